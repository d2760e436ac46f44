"""Every supported answer set bakes to exactly the expected files, fully rendered and parseable."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HOSTILE_TEXT, ROOT, SUPPORTED

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# the generated project's files for the default answers (the hello world), package folder spelled PACKAGE
EXPECTED_FILES = [
    ".dockerignore",
    ".github/dependabot.yml",
    ".github/requirements-uv.txt",
    ".github/scripts/check_inputs.py",
    ".github/scripts/github_api.py",
    ".github/scripts/install_scikit_learn.py",
    ".github/scripts/project_command.py",
    ".github/scripts/registry-branch.sh",
    ".github/workflows/cd.yml",
    ".github/workflows/ci.yml",
    ".github/workflows/retrain.yml",
    ".github/workflows/rollback.yml",
    ".gitignore",
    ".python-version",
    "Dockerfile",
    "README.md",
    "SECURITY.md",
    "gunicorn.conf.py",
    "pyproject.toml",
    "src/PACKAGE/__init__.py",
    "src/PACKAGE/artifact.py",
    "src/PACKAGE/cli.py",
    "src/PACKAGE/commands.py",
    "src/PACKAGE/config.py",
    "src/PACKAGE/data.py",
    "src/PACKAGE/declare.py",
    "src/PACKAGE/features.py",
    "src/PACKAGE/gate.py",
    "src/PACKAGE/monitor.py",
    "src/PACKAGE/pipeline.py",
    "src/PACKAGE/registry.py",
    "src/PACKAGE/service.py",
    "src/PACKAGE/staging.py",
    "src/PACKAGE/synthetic.py",
    "src/PACKAGE/train.py",
    "tests/cli_run.py",
    "tests/conftest.py",
    "tests/tampering.py",
    "tests/test_artifact.py",
    "tests/test_cli.py",
    "tests/test_config.py",
    "tests/test_contract.py",
    "tests/test_data.py",
    "tests/test_declare.py",
    "tests/test_features.py",
    "tests/test_fuzz.py",
    "tests/test_gate.py",
    "tests/test_monitor.py",
    "tests/test_pipeline.py",
    "tests/test_registry.py",
    "tests/test_security.py",
    "tests/test_server.py",
    "tests/test_service.py",
    "tests/test_staging.py",
    "tests/test_synthetic.py",
    "tests/test_train.py",
    "tox.ini",
    "uv.lock",
]
# what production_loop=true adds: the layer's package and tests, and monitor.yml
PRODUCTION_FILES = [
    ".github/workflows/monitor.yml",
    "src/PACKAGE/production/__init__.py",
    "src/PACKAGE/production/bisect.py",
    "src/PACKAGE/production/cli.py",
    "src/PACKAGE/production/feedback.py",
    "src/PACKAGE/production/guard.py",
    "src/PACKAGE/production/live.py",
    "src/PACKAGE/production/metrics.py",
    "src/PACKAGE/production/multiprocess.py",
    "src/PACKAGE/production/predictions.py",
    "src/PACKAGE/production/reproduce.py",
    "src/PACKAGE/production/shadow.py",
    "src/PACKAGE/production/simulate.py",
    "tests/production/conftest.py",
    "tests/production/test_feedback.py",
    "tests/production/test_guard.py",
    "tests/production/test_live.py",
    "tests/production/test_metrics.py",
    "tests/production/test_predictions.py",
    "tests/production/test_production_cli.py",
    "tests/production/test_reproduce.py",
    "tests/production/test_shadow.py",
    "tests/production/test_simulate.py",
]

UNRENDERED = re.compile(r"{{|{%|cookiecutter\.")
VERBATIM = ".github/workflows/"  # _copy_without_render: their ${{ }} belong to GitHub


def project_files(project: Path) -> set[str]:
    """Every file of a bake, relative to it, outside the .git folder."""
    return {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file() and ".git" not in p.parts}


@pytest.fixture(params=SUPPORTED)
def baked(request, cookies):
    """One bake per supported scenario."""
    answers = request.param
    result = cookies.bake(extra_context=answers)
    assert result.exit_code == 0, result.exception
    return answers, Path(result.project_path)


def test_scenario_bakes_the_exact_file_set(baked):
    answers, project = baked
    package = project.name.replace("-", "_")
    names = EXPECTED_FILES + (PRODUCTION_FILES if answers.get("production_loop") else [])
    expected = {name.replace("PACKAGE", package) for name in names}
    assert project_files(project) == expected


def test_scenario_leaves_no_unrendered_jinja(baked):
    _, project = baked
    rendered = [name for name in project_files(project) if not name.startswith(VERBATIM)]
    assert [name for name in rendered if UNRENDERED.search((project / name).read_text())] == []


def test_workflows_are_copied_verbatim_with_their_github_expressions(baked):
    answers, project = baked
    workflows = sorted((project / VERBATIM).glob("*.yml"))
    expected = ["cd.yml", "ci.yml", *(["monitor.yml"] if answers.get("production_loop") else []), "retrain.yml"]
    assert [w.name for w in workflows] == [*expected, "rollback.yml"]
    for workflow in workflows:
        assert workflow.read_text() == (ROOT / "{{cookiecutter.project_slug}}" / VERBATIM / workflow.name).read_text()


def test_scenario_pyproject_parses_and_keeps_free_text_exactly(baked):
    answers, project = baked
    data = tomllib.loads((project / "pyproject.toml").read_text())
    assert data["project"]["description"] == answers.get("description", data["project"]["description"])
    assert data["project"]["authors"][0]["name"] == answers.get("author_name", "Your Name")
    package = project.name.replace("-", "_")
    gate = data["tool"][package]["gate"]
    assert gate["min_auc"] == float(answers.get("min_auc", "0.80"))
    assert gate["max_auc_drop"] == float(answers.get("max_auc_drop", "0.01"))


def test_scenario_python_files_compile(baked):
    _, project = baked
    for path in project.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")


def test_scenario_git_repository_matches_init_git(baked):
    answers, project = baked
    if answers.get("init_git", True):
        log = subprocess.run(["git", "log", "--oneline"], cwd=project, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True)
        assert len(log.stdout.splitlines()) == 1 and status.stdout == ""
    else:
        assert not (project / ".git").exists()


def test_other_name_bakes_matching_folder_package_and_script(cookies):
    result = cookies.bake(extra_context={"project_name": "Card Guard"})
    project = Path(result.project_path)
    assert project.name == "card-guard"
    assert (project / "src" / "card_guard" / "cli.py").is_file()
    scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"card-guard": "card_guard.cli:main"}


def test_hostile_text_survives_into_the_readme(cookies):
    result = cookies.bake(extra_context={"description": HOSTILE_TEXT})
    assert HOSTILE_TEXT.strip() in (Path(result.project_path) / "README.md").read_text()
