"""The README's two commands are the ones CI and a newcomer run, and the first one really works."""

from __future__ import annotations

import configparser
import re
import shutil

import pytest
import yaml
from conftest import ROOT, run

README = (ROOT / "README.md").read_text()
COMMANDS = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)


def test_readme_shows_two_commands_and_ci_runs_the_second_verbatim():
    quickstart, test_command = COMMANDS[:2]
    assert "cookiecutter --no-input" in quickstart and "pipeline" in quickstart
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_the_docs_home_shows_the_readme_quickstart_verbatim():
    home = (ROOT / "docs" / "index.md").read_text()
    assert "## Quickstart" in home and f"```bash\n{COMMANDS[0]}\n```" in home.split("## Quickstart", 1)[1]


def test_the_quickstart_keeps_installer_output_quiet():
    installs = re.findall(r"pip install (?:-\S+ )*", COMMANDS[0])
    assert installs and all(" -q " in f" {install}" for install in installs)


@pytest.mark.slow
def test_readme_quickstart_deploys_a_model_that_answers_and_rejects_bad_input(tmp_path):
    clone = tmp_path / "cookiecutter-ml-cd"
    shutil.copytree(ROOT, clone, ignore=shutil.ignore_patterns(".git", ".venv", ".tox", "site", "__pycache__"))
    result = run(["bash", "-c", COMMANDS[0]], clone, timeout=1_200)
    assert result.returncode == 0, result.stdout[-4_000:] + result.stderr[-4_000:]
    assert "rejected 11 bad requests with 4xx" in result.stdout
    assert len(result.stdout.splitlines()) <= 20, result.stdout  # one line per stage, no pages of installer output
    assert result.stdout.splitlines()[-1].startswith("log: logs/pipeline-")
    assert "production: (none) -> " in result.stdout
    assert (tmp_path / "fraud-detector" / "registry" / "stages" / "production").is_file()


def test_every_scenario_the_default_run_leaves_out_has_a_tox_env_that_the_template_workflow_runs():
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    default = tox["testenv"]["commands"]
    left_out = set(re.findall(r"not (\w+)", default))
    assert {"container", "adoption", "bisect", "pull_requests"} <= left_out, default
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "template.yml").read_text())
    matrix = workflow["jobs"]["slow-scenarios"]["strategy"]["matrix"]["env"]
    for marker in left_out - {"container"}:  # the podman image test needs root and debootstrap: run by hand
        env = marker.replace("_", "-")
        assert f"pytest -m {marker}" in tox[f"testenv:{env}"]["commands"], marker
        assert env in matrix, (marker, matrix)


def layout_files(section: str) -> set[str]:
    """The Python files a part of the README's layout names."""
    return set(re.findall(r"(?<![\w.])(\w+\.py)\b", section))


def test_the_readme_layout_names_every_module_of_both_layers_and_no_other(default_project, production_project):
    readme = (ROOT / "README.md").read_text()
    layout = readme[
        readme.index("{{cookiecutter.project_slug}}/  the generated project") : readme.index("tests/production/")
    ]
    hello, layer = layout.split("with `production_loop=true`")
    package = next(default_project.glob("src/*/cli.py")).parent
    baked = {path.name for path in package.glob("*.py")} - {"__init__.py"}
    assert layout_files(hello) == baked
    added = {
        path.name for path in (production_project / package.relative_to(default_project) / "production").glob("*.py")
    }
    assert layout_files(layer) == added - {"__init__.py"}
