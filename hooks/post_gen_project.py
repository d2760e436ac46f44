"""Finish the generated project: a git repository with a first commit, and a word about the answers left to fix."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

INIT_GIT = "{{ cookiecutter.init_git }}" == "True"
PRODUCTION_LOOP = "{{ cookiecutter.production_loop }}" == "True"
# the production loop's files, removed whole from a hello-world project (the package name: see the JSON below)
PRODUCTION_FILES = ["src/{package}/production", "tests/production", ".github/workflows/monitor.yml"]
ENTRY_POINT = re.compile(r"\n# the production loop: [^\n]*\n\[project\.entry-points\.[^\n]*\n[^\n]*\n")
# free text arrives as JSON in single-quoted raw strings (tojson escapes every quote), so any answer leaves this
# file valid Python; the formatter must not turn them into double quotes, which the JSON itself starts with
# fmt: off
AUTHOR_NAME = r'{{ cookiecutter.author_name | tojson }}'
AUTHOR_EMAIL = r'{{ cookiecutter.author_email | tojson }}'
GITHUB_OWNER = r'{{ cookiecutter.github_owner | tojson }}'
PACKAGE_NAME = r'{{ cookiecutter.package_name | tojson }}'
# fmt: on
PLACEHOLDER_OWNER = "your-github-user"  # cookiecutter.json's default
# the first commit is the template's; later commits carry the user's own git identity
TEMPLATE_IDENTITY = ("-c", "user.name=cookiecutter-ml-cd", "-c", "user.email=cookiecutter-ml-cd@localhost")


def answer(rendered):
    """The text of a rendered answer constant (one line, spaces collapsed, as git wants an identity)."""
    return " ".join(str(json.loads(rendered)).split())


def remove_production_loop():
    """Leave the hello world: remove the production loop's files and its entry point in pyproject.toml."""
    for name in PRODUCTION_FILES:
        path = Path(name.format(package=json.loads(PACKAGE_NAME)))
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    pyproject = Path("pyproject.toml")
    text, found = ENTRY_POINT.subn("", pyproject.read_text())
    if found != 1:
        raise SystemExit("ERROR: pyproject.toml has no production entry point to remove; the template is broken")
    pyproject.write_text(text)


def git(*args):
    """Run a git command in the new project, failing loudly."""
    subprocess.run(["git", *args], check=True, stdout=subprocess.DEVNULL)


def git_config(key):
    """The value git would use for ``key`` here (local, global or system), or "" when none is set."""
    found = subprocess.run(["git", "config", "--get", key], capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else ""


def init_git_repository():
    """git init on main, then one commit of everything generated, so every model records a commit."""
    git("init", "--quiet", "--initial-branch=main")
    git("add", "--all")
    git(*TEMPLATE_IDENTITY, "commit", "--quiet", "--no-verify", "-m", "Initial commit from cookiecutter-ml-cd")


def set_missing_identity(name, email):
    """Give this repository the prompts' name and email where git has none, so the user's commits work."""
    missing = {key: value for key, value in (("user.name", name), ("user.email", email)) if not git_config(key)}
    for key, value in missing.items():
        if value:
            git("config", "--local", key, value)
    if missing:
        print(f"git had no {' or '.join(missing)}: this repository commits as {name} <{email}> (git config --local)")


def warn_about_placeholder_owner(owner):
    """Say on stderr when github_owner is still the placeholder: the image label and the docs' URLs use it."""
    if owner == PLACEHOLDER_OWNER:
        print(
            f"WARNING: github_owner is still {PLACEHOLDER_OWNER!r}: the image's source label (Dockerfile) names "
            f"https://github.com/{PLACEHOLDER_OWNER}/...; replace it there, or bake again with your GitHub user",
            file=sys.stderr,
        )


def main():
    """Run the chosen finishing steps."""
    if not PRODUCTION_LOOP:
        remove_production_loop()
    if INIT_GIT:
        try:
            init_git_repository()
            set_missing_identity(answer(AUTHOR_NAME), answer(AUTHOR_EMAIL))
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"WARNING: could not create the git repository ({error}); run `git init` yourself", file=sys.stderr)
    warn_about_placeholder_owner(answer(GITHUB_OWNER))


if __name__ == "__main__":
    main()
