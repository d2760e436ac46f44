"""Finish the generated project: make a git repository with a first commit when asked."""

import subprocess
import sys

INIT_GIT = "{{ cookiecutter.init_git }}" == "True"
# the first commit is the template's; later commits carry the user's own git identity
TEMPLATE_IDENTITY = ("-c", "user.name=cookiecutter-ml-cd", "-c", "user.email=cookiecutter-ml-cd@localhost")


def git(*args):
    """Run a git command in the new project, failing loudly."""
    subprocess.run(["git", *args], check=True, stdout=subprocess.DEVNULL)


def init_git_repository():
    """git init on main, then one commit of everything generated, so every model records a commit."""
    git("init", "--quiet", "--initial-branch=main")
    git("add", "--all")
    git(*TEMPLATE_IDENTITY, "commit", "--quiet", "--no-verify", "-m", "Initial commit from cookiecutter-ml-cd")


def main():
    """Run the chosen finishing steps."""
    if INIT_GIT:
        try:
            init_git_repository()
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"WARNING: could not create the git repository ({error}); run `git init` yourself", file=sys.stderr)


if __name__ == "__main__":
    main()
