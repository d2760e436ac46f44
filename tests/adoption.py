"""Helpers for adopting a table in a bake as docs/how-to/own-data.md says (test_own_data, test_adoption_shapes)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import ROOT, run

GUIDE = ROOT / "docs" / "how-to" / "own-data.md"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Data Owner",
    "GIT_AUTHOR_EMAIL": "owner@example.com",
    "GIT_COMMITTER_NAME": "Data Owner",
    "GIT_COMMITTER_EMAIL": "owner@example.com",
}
# gradient boosting uses every core through OpenMP: on a busy test machine one thread is many times faster
ONE_THREAD = {"OMP_NUM_THREADS": "1", "TOX_OVERRIDE": "testenv.pass_env+=OMP_NUM_THREADS"}


def guide_steps(slug: str, package: str) -> list[tuple[str, str]]:
    """The guide's marked blocks in order, as (what, code): "run", "apply pyproject.toml" or "apply train.py"."""
    marked = re.compile(r"<!-- (run|apply [\w.]+) -->\n```\w+\n(.*?)\n```\n", re.S)
    text = GUIDE.read_text().replace("fraud-detector", slug).replace("fraud_detector", package)
    return [(match[1], match[2]) for match in marked.finditer(text)]


def apply_pyproject(project: Path, table: str) -> None:
    """Replace the [tool.<package>.data] table of pyproject.toml with ``table``."""
    path = project / "pyproject.toml"
    text = path.read_text()
    header = table.splitlines()[0]
    start = text.index(header + "\n")
    end = text.index("\n\n", start)
    path.write_text(text[:start] + table.rstrip("\n") + text[end:])


def copy_project(project: Path, destination: Path) -> Path:
    """Copy a bake with its uv environment (.venv) to ``destination``, which the copy's scripts then run from.

    The environment's files are hard links, as uv's own are to its cache (nothing writes into an installed
    package), so a copy takes no time and no room. A venv names its own folder in its scripts' first lines and in
    the .pth of an editable install: those files are replaced by ones naming the copy, which so imports its own
    sources and never the original's.
    """
    shutil.copytree(project, destination, symlinks=True, ignore=shutil.ignore_patterns(".venv"))
    venv = destination / ".venv"
    shutil.copytree(project / ".venv", venv, symlinks=True, copy_function=os.link)
    old, new = str(project.resolve()).encode(), str(destination.resolve()).encode()
    for path in [*(venv / "bin").iterdir(), *venv.glob("lib/python*/site-packages/*.pth")]:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old in data and b"\0" not in data[:1024]:
            replacement = path.with_name(path.name + ".copy")
            replacement.write_bytes(data.replace(old, new))
            replacement.chmod(path.stat().st_mode)
            replacement.replace(path)  # a new file: the original's hard link keeps its content
    return destination


def failures(junit_xml: Path, outcomes: tuple[str, ...] = ("failure", "error")) -> dict[str, str]:
    """The failed and erroring tests (or other ``outcomes``) of a JUnit XML report: node id to its reason, one line."""
    found = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        for outcome in outcomes:
            element = case.find(outcome)
            if element is None:
                continue
            parts = case.get("classname", "").split(".")
            classes = next((i for i, part in enumerate(parts) if part[:1].isupper()), len(parts))
            name = "::".join([f"{'/'.join(parts[:classes])}.py", *parts[classes:], case.get("name", "")])
            reason = (element.get("message") or element.text or "").strip().splitlines() or [""]
            found[name if outcome != "error" else f"{name} (error)"] = reason[0][:300]
    return found


def adopt(project: Path, table, slug: str, package: str, **env: str) -> list[tuple[str, subprocess.CompletedProcess]]:
    """The guide's steps for a table of tests/tables.py in a bake whose .venv is on ``env``'s PATH.

    Puts the table under datasets/, runs `<slug> declare ... --write`, sets the data table of pyproject.toml, runs
    the guide's `git rm` of the example and commits. Returns each command run with its result, up to the first
    that failed.
    """
    table.write(project)
    removal = [code for what, code in guide_steps(slug, package) if what == "run" and code.startswith("git rm")]
    assert len(removal) == 1, "the guide deletes the example with one `git rm`"
    steps = [
        ("declare", [slug, "declare", *table.declare_args()]),
        ("pyproject", None),
        ("git rm", ["bash", "-e", "-c", removal[0]]),
        ("commit", ["git", "add", "datasets", "pyproject.toml", "src", "tests"]),
        ("commit", ["git", "commit", "--quiet", "--message", f"Train on {table.file}"]),
    ]
    done = []
    for what, command in steps:
        if command is None:
            apply_pyproject(project, table.data_table(package))
            continue
        result = run(command, project, **GIT_IDENTITY, **env)
        done.append((what, result))
        if result.returncode != 0:
            break
    return done
