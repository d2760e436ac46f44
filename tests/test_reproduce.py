"""`reproduce` rebuilds a registered model bit for bit in a fresh locked environment; `bisect` names the bad commit."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, run
from test_lock import uv

_spec = importlib.util.spec_from_file_location("bisect_speed", ROOT / "bench" / "bisect_speed.py")
bisect_speed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bisect_speed)


@pytest.fixture
def installed(production_project, tmp_path) -> tuple[Path, dict[str, str]]:
    """A copy of the default bake (its git history included) installed from its lock; and the environment to run in."""
    project = tmp_path / production_project.name
    shutil.copytree(production_project, project, ignore=shutil.ignore_patterns(".tox", ".venv", "registry", "data"))
    # the session's bake is shared: what earlier tests left in it must not make the training commit look dirty
    subprocess.run(["git", "checkout", "--quiet", "--", "."], cwd=project, check=True)
    subprocess.run(["git", "clean", "-fdq"], cwd=project, check=True)
    env = {
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # no locked environment built yet
        "PATH": f"{Path(uv()).parent}{os.pathsep}{os.environ['PATH']}",
    }
    synced = run([uv(), "sync", "--locked", "--quiet", "--compile-bytecode"], project, timeout=600, **env)
    assert synced.returncode == 0, synced.stderr
    assert git(project, "status", "--porcelain") == "", "installing left the work tree dirty"
    return project, env


def cli(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run the project's command from its own .venv."""
    return run([str(project / ".venv" / "bin" / project.name), *args], project, timeout=600, **env)


def git(project: Path, *args: str) -> str:
    """Run git in the project; return its output."""
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.slow
@pytest.mark.bisect  # a minute of fresh environments: with bisect, in its own tox env, out of the default run
def test_reproduce_rebuilds_a_registered_model_in_a_second_fresh_environment_bit_for_bit(installed):
    project, env = installed
    trained = cli(project, env, "train")
    assert trained.returncode == 0, trained.stderr
    version, folder = trained.stdout.split()
    assert cli(project, env, "register", folder).returncode == 0
    reproduced = cli(project, env, "reproduce", version)
    assert reproduced.returncode == 0, reproduced.stdout + reproduced.stderr
    assert "identical: all 20000 holdout predictions match bit for bit" in reproduced.stdout
    built = list((Path(env["XDG_CACHE_HOME"]) / project.name.replace("-", "_") / "environments").iterdir())
    assert len(built) == 1 and (built[0] / "bin" / "python").is_file()  # the second environment, from the lock
    assert git(project, "worktree", "list").count("\n") == 0  # its worktree is gone

    (project / "data" / "week-00" / "train.csv").unlink()
    missing = cli(project, env, "reproduce", version)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == (
        f"{project.name}: error: data/week-00/train.csv is missing and no file under data/ has its recorded sha256 "
        f"{re.search(r'sha256 ([0-9a-f]{12})', missing.stderr)[1]}\n"
    )


@pytest.mark.bisect
def test_bisect_names_the_subtle_bug_among_16_commits_in_5_retrains_and_leaves_the_repository_as_it_was(installed):
    project, env = installed
    bug = bisect_speed.make_history(project, commits=16, bug_at=11)
    head = git(project, "rev-parse", "HEAD")
    done = cli(project, env, "bisect", "HEAD~16", "HEAD")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [line for line in done.stdout.splitlines() if re.search(r"  AUC \d\.\d{4}", line)]
    assert 2 <= len(steps) <= 5, done.stdout  # GOOD's model, then at most ceil(log2 16) = 4 steps
    assert all(re.search(r"  lower bound [+-]\d\.\d{4}  (good|bad)$", line) for line in steps[1:]), done.stdout
    assert f"first bad commit: {bug[:7]} {bisect_speed.BUG_MESSAGE}" in done.stdout
    assert "src/fraud_detector/train.py | 4 +++-" in done.stdout  # the guilty commit's diff stat
    # the repository is as it was: same HEAD, clean, no bisection going on, no extra worktree
    assert git(project, "rev-parse", "HEAD") == head and git(project, "status", "--porcelain") == ""
    assert git(project, "worktree", "list").count("\n") == 0
    assert subprocess.run(["git", "bisect", "log"], cwd=project, capture_output=True).returncode != 0

    clean = cli(project, env, "bisect", "HEAD~16", "HEAD~6")
    assert clean.returncode == 1
    assert clean.stderr.endswith("fails the gate against GOOD's model\n") and clean.stderr.count("\n") == 1
