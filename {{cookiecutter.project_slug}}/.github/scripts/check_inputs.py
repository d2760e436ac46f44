"""Check the workflow inputs and repository variables a job uses before any shell sees them.

    python3 .github/scripts/check_inputs.py NAME...

Each NAME is an environment variable that the step sets from an input, a variable or another job's output. A bad
value stops the job with one `::error::` line (which does not repeat the value); good ones are written to
$GITHUB_ENV, the week as a plain number (this calendar week when empty; nothing when pyproject.toml names a data
source other than the synthetic example, whose weeks the commands then refuse), so later steps read checked values
only.
Why before any shell: bash arithmetic such as $((10#$WEEK)) runs the $(...) inside an array subscript of the value.
Standard library only: it runs before the project is installed.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from datetime import datetime, timezone


def matches(pattern: str) -> Callable[[str], bool]:
    """A test that the whole value matches ``pattern``."""
    return lambda value: re.fullmatch(pattern, value) is not None


VERSION = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"  # a registry version name, as artifact.VERSION_NAME
RULES: dict[str, tuple[Callable[[str], bool], str]] = {
    "WEEK": (matches(r"[0-9]{0,3}"), "the week (input or DATA_WEEK variable) must be a number from 0 to 999, or empty"),
    "VERSION": (matches(f"({VERSION})?"), "the version must be a registered version name (letters, digits, . _ -)"),
    "GATED_AGAINST": (matches(f"({VERSION})?"), "the production version the gate compared against is not a version"),
    "RESTORED": (matches(VERSION), "the production pointer does not name a version after the rollback"),
    "FOLDER": (
        matches(r"(?![/-])(?!(.*/)?\.\.(/|$))[A-Za-z0-9._/-]{1,200}"),
        "the model folder must be a relative path inside the repository",
    ),
    "REASON": (
        lambda value: value.isprintable() and len(value) <= 200,
        "the reason must be one line of at most 200 printable characters",
    ),
    "IMAGE_REGISTRY": (
        matches(r"[a-z0-9]([a-z0-9.-]{0,250}[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._-]+)*"),
        "the IMAGE_REGISTRY variable must be a registry host such as ghcr.io, optionally with a port and a path",
    ),
    "FEEDBACK_BRANCH": (
        lambda value: re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}", value) is not None and ".." not in value,
        "the FEEDBACK_BRANCH variable must be a branch name (letters, digits, . _ / -)",
    ),
    "STAGING_PORT": (
        lambda value: re.fullmatch(r"[0-9]{1,5}", value) is not None and 1 <= int(value) <= 65535,
        "the STAGING_PORT variable must be a port number from 1 to 65535",
    ),
}


def checked(names: list[str], environ: dict[str, str]) -> dict[str, str]:
    """The checked (and normalised) values of ``names``; ValueError with the message of the first bad one."""
    values = {}
    for name in names:
        if name not in RULES:
            raise ValueError(f"check_inputs.py has no rule for {name}")
        value = environ.get(name, "")
        test, message = RULES[name]
        if not test(value):
            raise ValueError(message)
        values[name] = value
    if "WEEK" in values:
        week = values["WEEK"]
        synthetic = data_source() == "synthetic"
        values["WEEK"] = str(int(week) if week else datetime.now(timezone.utc).isocalendar()[1]) if synthetic else ""
    return values


def data_source(pyproject: str = "pyproject.toml") -> str:
    """The [tool.<package>.data] source of the project (its own file: trusted), "synthetic" when none is named."""
    try:
        import tomllib
    except ImportError:  # Python 3.10 as the runner's python3: the project's CLI refuses a week it cannot use
        return "synthetic"
    with open(pyproject, "rb") as file:
        tools = tomllib.load(file).get("tool", {})
    tables = [table for table in tools.values() if isinstance(table, dict) and isinstance(table.get("data"), dict)]
    return str(tables[0]["data"].get("source", "synthetic")) if tables else "synthetic"


def main(names: list[str]) -> int:
    """Check every name, then write them all to $GITHUB_ENV; exit 1 with one ::error:: line at the first bad one."""
    try:
        values = checked(names, dict(os.environ))
    except ValueError as error:
        print(f"::error::{error}")
        return 1
    with open(os.environ["GITHUB_ENV"], "a", encoding="utf-8") as env_file:
        env_file.writelines(f"{name}={value}\n" for name, value in values.items())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
