"""Print the project's command (its console script in pyproject.toml), so workflows need no template variables.

Workflows run `echo "CLI=$(python .github/scripts/project_command.py)" >> "$GITHUB_ENV"`.
"""

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: tomli comes with the project's dependencies
    import tomli as tomllib

with open("pyproject.toml", "rb") as file:
    scripts = tomllib.load(file)["project"]["scripts"]
print(next(name for name, target in scripts.items() if target.endswith(".cli:main")))
