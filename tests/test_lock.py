"""The generated uv.lock: it matches pyproject.toml whatever the project is called, and every install path uses it."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from conftest import run


def uv() -> str:
    """The uv executable next to this interpreter (the template's tooling installs it), else on PATH."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.is_file() else shutil.which("uv")
    assert found, "uv is not installed: it is in requirements-dev.txt"
    return found


@pytest.fixture(params=[{}, {"project_name": "Card Guard"}], ids=["default", "renamed"])
def bake(request, cookies) -> Path:
    """The default bake and one with another project name (so another package name inside uv.lock)."""
    result = cookies.bake(extra_context=request.param)
    assert result.exit_code == 0, result.exception
    return Path(result.project_path)


def test_the_lock_matches_pyproject_in_the_default_and_a_renamed_bake(bake):
    checked = run([uv(), "lock", "--check"], bake, timeout=120)
    assert checked.returncode == 0, checked.stderr
    assert f'name = "{bake.name}"\nversion = "0.1.0"\nsource = {{ editable = "." }}' in (bake / "uv.lock").read_text()


def test_the_lock_pins_every_package_with_hashes_for_every_platform_and_python(default_project):
    lock = (default_project / "uv.lock").read_text()
    assert re.search(r'^requires-python = ">=3.10"$', lock, flags=re.M)
    assert "supported-markers" not in lock and "environments" not in lock  # universal: no platform left out
    wheels = re.findall(r'url = "[^"]+/([^/"]+\.whl)", hash = "sha256:[0-9a-f]{64}"', lock)
    tags = " ".join(wheels)
    for platform in ("manylinux", "macosx", "win_amd64"):
        assert platform in tags, platform
    sklearn = [w for w in wheels if w.startswith("scikit_learn-")]
    for python in ("cp310", "cp311", "cp312", "cp313"):
        assert any(f"-{python}-" in w for w in sklearn), python


def install_commands(project: Path) -> dict[str, list[str]]:
    """Every install command of the generated project, as the README, the workflows and the Dockerfile write it."""
    readme = re.search(r"^(uv sync --locked[^#\n]*?)\s*(#|$)", (project / "README.md").read_text(), flags=re.M)
    commands = {"README": readme[1].split()}
    for path in sorted((project / ".github" / "workflows").glob("*.yml")):
        for number, line in enumerate(re.findall(r"^\s*(uv sync [^\n]+)$", path.read_text(), flags=re.M)):
            commands[f"{path.name}#{number}"] = line.split()
    docker = re.search(r"^RUN /opt/uv/bin/(uv sync [^\n]+)$", (project / "Dockerfile").read_text(), flags=re.M)
    commands["Dockerfile"] = docker[1].split(" --python")[0].split()
    commands["tox"] = [sys.executable, "-m", "tox", "-e", "test", "--notest"]
    return commands


@pytest.mark.slow
def test_every_install_path_refuses_a_pyproject_that_the_lock_does_not_match(checked_project, tmp_path):
    project = tmp_path / checked_project.name
    shutil.copytree(checked_project, project, ignore=shutil.ignore_patterns(".git", ".tox", ".venv"))
    pyproject = project / "pyproject.toml"
    # a changed floor: the lock no longer matches, and uv tells from its cache alone, which checked_project's install
    # filled (offline: seconds; online, each command revalidated the index for 5 s)
    changed = pyproject.read_text().replace('    "flask>=3.1.1",\n', '    "flask>=3.1",\n')
    assert changed != pyproject.read_text()
    pyproject.write_text(changed)
    commands = install_commands(project)
    assert len(commands) >= 8, commands  # README, ci.yml x3, cd.yml x3, rollback.yml, Dockerfile, tox
    # one online resolution puts the index's answers in uv's cache, whatever the tests before this one installed
    # (an install from the lock alone reads no index page), so that every command below can tell offline
    warmed = run([uv(), "lock", "--check"], project, timeout=300)
    assert "needs to be updated" in warmed.stdout + warmed.stderr, warmed.stdout + warmed.stderr
    for name, command in commands.items():
        if command[0] == "uv":
            command = [uv(), *command[1:]]
        env = {"UV_PROJECT_ENVIRONMENT": str(tmp_path / f"env-{name}"), "UV_OFFLINE": "1"}
        done = run(command, project, timeout=300, **env)
        assert done.returncode != 0, f"{name}: {' '.join(command)} installed despite the stale lock"
        message = " ".join((done.stdout + done.stderr).split())  # uv wraps its messages to the terminal's width
        assert "The lockfile at `uv.lock` needs to be updated, but `--locked` was provided." in message, name


def test_workflows_install_only_from_the_lock_with_a_hash_pinned_uv(default_project):
    for path in sorted((default_project / ".github" / "workflows").glob("*.yml")):
        steps = [s for job in yaml.safe_load(path.read_text())["jobs"].values() for s in job.get("steps", [])]
        scripts = "\n".join(step.get("run", "") for step in steps)
        pip = [line.strip() for line in scripts.splitlines() if "pip install" in line]
        expected = "python -m pip install --require-hashes --no-deps --requirement .github/requirements-uv.txt"
        assert all(line == expected for line in pip), (path.name, pip)
        assert scripts.count("uv sync --locked") == len(pip), path.name
        assert "cache: pip" not in path.read_text() and "constraints.txt" not in scripts
    pinned = (default_project / ".github" / "requirements-uv.txt").read_text()
    assert re.search(r"^uv==\d+\.\d+\.\d+ \\$", pinned, flags=re.M) and pinned.count("--hash=sha256:") >= 10


def test_tox_environments_build_from_the_lock(default_project):
    tox = (default_project / "tox.ini").read_text()
    assert re.search(r"^\[testenv\]\nrunner = uv-venv-lock-runner$", tox, flags=re.M)
    assert "tox-uv" in tox and "runner =" not in tox.split("[testenv]", 1)[1].split("\n", 2)[2]
    assert "deps =" not in tox  # every tool (ruff, pytest) comes from the lock's extras


@pytest.mark.slow
def test_tox_leaves_dot_venv_to_uv_sync_and_git_never_commits_a_venv_redirect_file(checked_project, tmp_path):
    # tox 4.65 and virtualenv write a PEP 832 `.venv` file naming their environment, and uv follows it: committed,
    # it would send the workflows' `uv sync --locked` to a .tox/test that a fresh checkout does not have
    assert not (checked_project / ".venv").exists()
    repository = tmp_path / "repository"
    repository.mkdir()
    shutil.copy(checked_project / ".gitignore", repository)
    (repository / ".venv").write_text(".tox/test\n")
    assert run(["git", "init", "--quiet"], repository).returncode == 0
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], repository)
    assert status.stdout == "?? .gitignore\n", status.stdout + status.stderr


def test_dependabot_updates_the_lock_and_the_uv_pin(default_project):
    updates = yaml.safe_load((default_project / ".github" / "dependabot.yml").read_text())["updates"]
    ecosystems = {(update["package-ecosystem"], update["directory"]) for update in updates}
    assert {("uv", "/"), ("pip", "/.github")} <= ecosystems
    assert ("pip", "/") not in ecosystems


@pytest.mark.slow
def test_the_readmes_tox_runs_through_the_uv_in_the_projects_own_venv(default_project, tmp_path):
    # the reader's path: after the README's `uv sync`, tox through `.venv/bin/uvx`, with nothing else on PATH
    project = tmp_path / default_project.name
    shutil.copytree(default_project, project)
    synced = run([uv(), "sync", "--quiet", "--locked", "--extra", "test", "--compile-bytecode"], project, timeout=900)
    assert synced.returncode == 0, synced.stdout[-3_000:] + synced.stderr[-3_000:]
    command = re.search(r"`(\.venv/bin/uvx [^`]+ tox) -e lint,test`", (project / "README.md").read_text())
    assert command, "the README no longer runs tox through .venv/bin/uvx"
    done = run([*command.group(1).split(), "-e", "lint"], project, timeout=900)  # lint: the suite runs elsewhere
    assert done.returncode == 0 and "lint: OK" in done.stdout, done.stdout[-3_000:] + done.stderr[-3_000:]
