"""Scenarios named once, and bakes shared across the session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = json.loads((ROOT / "cookiecutter.json").read_text())
# cookiecutter and cruft put the template on sys.path while they render, so that its `_extensions` import;
# pytest-cookies renders the context once more outside that, so the tests do the same for it
sys.path.append(str(ROOT))

# one per pytest-xdist worker, so that nested pytest runs of two workers never share a numbered folder
NESTED_TEMP = Path(tempfile.gettempdir()) / f"cookiecutter-ml-cd-nested{os.environ.get('PYTEST_XDIST_WORKER', '')}"
NESTED_TEMP.mkdir(exist_ok=True)

HOSTILE_TEXT = 'He said "it\'s fine" \\ then left \U0001f984\nsecond line with {braces} and a tab\t'

# every scenario must bake cleanly; ids are what pytest prints
SUPPORTED = [
    pytest.param({}, id="default"),
    *[pytest.param({"python_version": v}, id=f"python-{v}") for v in DEFAULTS["python_version"][1:]],
    pytest.param({"init_git": False}, id="no-git"),
    pytest.param({"production_loop": True}, id="production-loop"),
    pytest.param({"project_name": "Card Guard", "min_auc": "0.9", "max_auc_drop": "0"}, id="other-name-and-gate"),
    pytest.param(
        {"description": HOSTILE_TEXT, "author_name": HOSTILE_TEXT, "author_email": "o'brien@example.com"},
        id="hostile-text",
    ),
]

# every one of these must be refused by the pre-gen hook with one ERROR line naming the key
UNSUPPORTED = [
    pytest.param({"project_slug": "Fraud-Detector"}, "project_slug", id="uppercase-slug"),
    pytest.param({"project_slug": "fraud detector"}, "project_slug", id="slug-with-space"),
    pytest.param({"package_name": "2fast"}, "package_name", id="package-not-identifier"),
    pytest.param({"package_name": "class"}, "package_name", id="package-keyword"),
    pytest.param({"package_name": "json"}, "package_name", id="package-stdlib"),
    pytest.param({"package_name": "Fraud_Detector"}, "package_name", id="package-uppercase"),
    pytest.param({"min_auc": "0.5"}, "min_auc", id="min-auc-at-chance"),
    pytest.param({"min_auc": "1"}, "min_auc", id="min-auc-one"),
    pytest.param({"min_auc": "high"}, "min_auc", id="min-auc-not-a-number"),
    pytest.param({"max_auc_drop": "-0.01"}, "max_auc_drop", id="drop-negative"),
    pytest.param({"max_auc_drop": "0.5"}, "max_auc_drop", id="drop-too-large"),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    """--update-docs: tests that compare an output the docs show with a real one rewrite it instead."""
    parser.addoption(
        "--update-docs",
        action="store_true",
        help="rewrite the outputs docs/tutorial.md and docs/captured/ show from this run, instead of comparing",
    )


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: `tox` runs the tests with `-n auto`
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Each module on one worker, so its module fixtures are made once; and every module that uses checked_project
    (a bake's own `tox`, a minute of work) on the same worker, which makes it once."""
    from xdist.scheduler import LoadScopeScheduling

    if config.getoption("dist") != "load":  # another --dist asked for by name: xdist's own scheduler
        return None
    checked = {path.name for path in Path(__file__).parent.glob("test_*.py") if "checked_" in path.read_text()}

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "checked_project" if Path(module).name in checked else module

    return ByModule(config, log)


@pytest.fixture(scope="session")
def update_docs(request: pytest.FixtureRequest) -> bool:
    """Whether this run rewrites the docs' shown outputs (--update-docs) rather than checking them."""
    return request.config.getoption("--update-docs")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the outer tox/venv variables, so a nested tox or venv behaves as on a laptop."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOX_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".tox" not in p)
    # a nested pytest must not prune this session's temporary folders (pytest keeps only the last three)
    env["PYTEST_DEBUG_TEMPROOT"] = str(NESTED_TEMP)
    env.update(extra)
    return env


def run(command: list[str], cwd: Path, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
    """Run a command, capturing output, with a bound on its duration."""
    return subprocess.run(command, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def default_project(cookies_session) -> Path:
    """The default bake, made once per session."""
    result = cookies_session.bake()
    assert result.exit_code == 0, result.exception
    return Path(result.project_path)


@pytest.fixture(scope="session")
def production_project(cookies_session) -> Path:
    """A bake with the production loop (`production_loop=true`), made once per session."""
    result = cookies_session.bake(extra_context={"production_loop": True})
    assert result.exit_code == 0, result.exception
    return Path(result.project_path)


@pytest.fixture(scope="session")
def checked_production_project(production_project: Path) -> Path:
    """The production-loop bake after its own `tox -e lint,test` passed; its test env holds the installed CLI."""
    result = run([sys.executable, "-m", "tox", "-e", "lint,test"], production_project)
    assert result.returncode == 0, result.stdout[-5_000:] + result.stderr[-2_000:]
    return production_project


@pytest.fixture(scope="session")
def checked_project(default_project: Path) -> Path:
    """The default bake after its own `tox -e lint,test` passed; its test env holds the installed CLI."""
    result = run([sys.executable, "-m", "tox", "-e", "lint,test"], default_project)
    assert result.returncode == 0, result.stdout[-5_000:] + result.stderr[-2_000:]
    return default_project
