"""Every shape of table in tests/tables.py, adopted as docs/how-to/own-data.md says, with no test edited (issue 23).

The generated tests read the feature list and the configured data, so they must hold for any learnable table: many
int columns, floats whose ranges hold no integer, only 0/1 features, a constant column, 178 rows, a near-perfect
model, copies of the informative column, a label named `target`, names that are not identifiers, whole numbers
written as `127.0`, no date to split on. For each, in a copy of one default bake and its environment: the guide's
steps (`declare ... --write`, the data table of pyproject.toml, `git rm` of the example, a commit); then the
generated suite must pass, its lint too, and `pipeline` must deploy to production.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from adoption import ONE_THREAD, adopt, copy_project, failures
from conftest import clean_env, run
from tables import SHAPES

pytestmark = [pytest.mark.slow, pytest.mark.adoption]

SLUG, PACKAGE = "fraud-detector", "fraud_detector"
SYNC = ["sync", "--quiet", "--locked", "--extra", "test", "--extra", "lint", "--compile-bytecode"]


@pytest.fixture(scope="module")
def installed(cookies_session) -> Path:
    """A default bake with its uv environment (.venv, synced from its uv.lock with the test and lint extras)."""
    result = cookies_session.bake()
    assert result.exit_code == 0, result.exception
    project = Path(result.project_path)
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
    done = run([uv, *SYNC], project, timeout=1_800)
    assert done.returncode == 0, done.stdout[-3_000:] + done.stderr[-3_000:]
    return project


@pytest.fixture(scope="module", params=SHAPES, ids=[shape.id for shape in SHAPES])
def adopted(request, installed, tmp_path_factory):
    """A copy of the bake after the guide's steps on one shape of table, and the environment to run it in."""
    shape = request.param
    project = copy_project(installed, tmp_path_factory.mktemp(shape.id) / SLUG)
    env = {"PATH": os.pathsep.join([str(project / ".venv" / "bin"), clean_env()["PATH"]]), **ONE_THREAD}
    for what, done in adopt(project, shape, SLUG, PACKAGE, **env):
        assert done.returncode == 0, f"{shape.id}: {what} failed\n{done.stdout[-3_000:]}{done.stderr[-3_000:]}"
    yield project, env
    shutil.rmtree(project / ".venv")  # hard links, but a tree of thousands of them; the project stays to inspect


def test_the_generated_suite_passes_with_no_test_edited(adopted):
    project, env = adopted
    changed = run(["git", "diff", "--name-status", "HEAD~1", "HEAD", "--", "tests"], project).stdout.split("\n")
    assert [line for line in changed if line] == ["D\ttests/test_synthetic.py"]
    report = project.parent / "junit.xml"
    done = run(["pytest", "-p", "no:cacheprovider", "-q", "-n", "0", f"--junitxml={report}"], project, 3_600, **env)
    failed = failures(report) if report.is_file() else {}
    summary = "\n".join(f"{name}: {reason}" for name, reason in sorted(failed.items()))
    tail = (done.stdout + done.stderr).strip().splitlines()[-1:]
    assert done.returncode == 0, f"{len(failed)} failed or erred ({tail}):\n{summary or done.stdout[-5_000:]}"
    # a test that cannot apply to this table says why, in words of the declaration, not pytest's own
    skipped = failures(report, outcomes=("skipped",))
    assert not {name: why for name, why in skipped.items() if "empty parameter set" in why}, skipped


def test_its_lint_passes(adopted):
    project, env = adopted
    for command in (["ruff", "check", "src", "tests"], ["ruff", "format", "--check", "src", "tests"]):
        done = run(command, project, **env)
        assert done.returncode == 0, done.stdout[-3_000:] + done.stderr[-3_000:]


def test_the_pipeline_deploys_to_production(adopted):
    project, env = adopted
    done = run([SLUG, "pipeline", "--skip-tests"], project, 1_800, **env)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "production: (none) -> " in output, output[-5_000:]
    assert (project / "registry" / "stages" / "production").is_file()
