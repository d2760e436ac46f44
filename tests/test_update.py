"""Grow into the layer later: a hello-world project with a commit of its own gets the production loop with cruft.

As docs/how-to/update.md says: link the project with cruft, skip `.git`, update with `production_loop` true, install
again; then the project's own suite (the layer's tests included) and its pipeline pass, and the own commit stays.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run

pytestmark = [pytest.mark.slow, pytest.mark.update]

IDENTITY = ["-c", "user.name=Learner", "-c", "user.email=learner@example.com"]
OWN_NOTE = "A note of the learner's own, kept through the update.\n"


def tool(name: str) -> str:
    """An executable of the template's own environment (cruft, uv), beside this interpreter or on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name) or name


def git(project: Path, *args: str) -> str:
    """Run git in the project as the learner; return its output."""
    done = subprocess.run(["git", *IDENTITY, *args], cwd=project, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def updated(tmp_path_factory) -> Path:
    """A hello-world bake with an own commit, updated with production_loop=true, installed, committed."""
    if subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip():
        pytest.fail("cruft renders the template's last commit: commit the template's changes before this test")
    work = tmp_path_factory.mktemp("update")
    baked = run([sys.executable, "-m", "cookiecutter", "--no-input", str(ROOT), "-o", str(work)], work)
    assert baked.returncode == 0, baked.stderr
    project = work / "fraud-detector"
    (project / "NOTES.md").write_text(OWN_NOTE)
    features = project / "src" / "fraud_detector" / "features.py"
    features.write_text(features.read_text().replace("Transaction amount in the card's currency.", "Amount, EUR."))
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "-m", "My own change")

    linked = run([tool("cruft"), "link", "--no-input", str(ROOT)], project)
    assert linked.returncode == 0, linked.stdout + linked.stderr
    state = json.loads((project / ".cruft.json").read_text())
    (project / ".cruft.json").write_text(json.dumps({**state, "skip": [".git"]}, indent=2))
    git(project, "add", ".cruft.json")
    git(project, "commit", "--quiet", "-m", "Link to the template with cruft")
    update = [tool("cruft"), "update", "--skip-apply-ask", "--variables-to-update", '{"production_loop": true}']
    done = run(update, project)
    assert done.returncode == 0, done.stdout + done.stderr
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "-m", "Add the production loop")
    sync = [tool("uv"), "sync", "--quiet", "--locked", "--extra", "test", "--extra", "lint", "--compile-bytecode"]
    installed = run(sync, project, timeout=900)
    assert installed.returncode == 0, installed.stderr
    return project


def test_the_update_adds_the_layer_and_keeps_the_learners_own_commit(updated):
    assert (updated / "src" / "fraud_detector" / "production" / "guard.py").is_file()
    assert (updated / ".github" / "workflows" / "monitor.yml").is_file()
    assert (updated / "NOTES.md").read_text() == OWN_NOTE
    assert "Amount, EUR." in (updated / "src" / "fraud_detector" / "features.py").read_text()
    assert git(updated, "log", "--format=%s").splitlines()[:3] == [
        "Add the production loop",
        "Link to the template with cruft",
        "My own change",
    ]
    assert not list(updated.rglob("*.rej")) and not list(updated.rglob("*.orig"))
    assert json.loads((updated / ".cruft.json").read_text())["context"]["cookiecutter"]["production_loop"] is True


def test_after_the_update_the_suite_with_the_layers_tests_and_the_pipeline_pass(updated):
    bin_dir = updated / ".venv" / "bin"
    assert "guard" in run([str(bin_dir / "fraud-detector"), "--help"], updated).stdout
    lint = run([str(bin_dir / "ruff"), "check", "src", "tests"], updated)
    assert lint.returncode == 0, lint.stdout
    tests = run([str(bin_dir / "pytest"), "-q", "-p", "no:cacheprovider"], updated, timeout=900)
    assert tests.returncode == 0, tests.stdout[-5_000:]
    assert "tests/production" in run([str(bin_dir / "pytest"), "--co", "-q", "tests/production"], updated).stdout
    pipeline = run([str(bin_dir / "fraud-detector"), "pipeline", "--skip-tests"], updated, timeout=900)
    assert pipeline.returncode == 0, pipeline.stdout + pipeline.stderr
    assert "production: (none) -> " in pipeline.stdout
