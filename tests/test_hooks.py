"""The hooks: pre-gen refuses bad answers with one clear line; post-gen leaves a repository the user can commit to."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import DEFAULTS, HOSTILE_TEXT, ROOT, UNSUPPORTED
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter


def load_hook(name: str = "pre_gen_project"):
    """Import a hook as a module (both are valid Python before rendering)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOOD = {
    "slug": "fraud-detector",
    "package": "fraud_detector",
    "python": "3.12",
    "min_auc": "0.80",
    "max_auc_drop": "0.01",
}


def test_hook_accepts_the_defaults():
    assert load_hook().problems(**GOOD) == []


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"python": "3.9"}, "python_version"),
        ({"python": "3.14"}, "python_version"),
        ({"min_auc": "nan"}, "min_auc"),
        ({"max_auc_drop": "0.49"}, None),
        ({"max_auc_drop": "0"}, None),
        ({"package": "fraud-detector"}, "package_name"),
        ({"slug": "fraud--detector"}, "project_slug"),
        ({"slug": "-fraud"}, "project_slug"),
        ({"target": "Fraud Risk"}, "target"),
        ({"target": "churn"}, None),
        ({"record_name": "customer account"}, None),
        ({"record_name": 'row"; import os'}, "record_name"),
    ],
)
def test_hook_checks_each_answer(change, key):
    found = load_hook().problems(**{**GOOD, **change})
    if key is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(key)


@pytest.mark.parametrize(("answers", "key"), UNSUPPORTED)
def test_bake_refuses_bad_answer_with_one_error_line_and_no_output(tmp_path, capfd, answers, key):
    with pytest.raises(FailedHookException):
        cookiecutter(str(ROOT), no_input=True, extra_context=answers, output_dir=str(tmp_path))
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and key in errors[0]
    assert list(tmp_path.iterdir()) == []


def test_bake_refuses_an_unlisted_python_version(tmp_path):
    with pytest.raises(ValueError, match="3.9"):
        cookiecutter(str(ROOT), no_input=True, extra_context={"python_version": "3.9"}, output_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# post-gen: git identity and the placeholder owner
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def no_git_identity(tmp_path, monkeypatch) -> Path:
    """A machine where git knows no one: an empty HOME, no system config, no GIT_* variables."""
    home = tmp_path / "home"
    home.mkdir()
    for key in [k for k in os.environ if k.startswith("GIT_") or k in ("EMAIL", "XDG_CONFIG_HOME")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return home


def git(project: Path, *args: str) -> str:
    """Run git in a bake with the current environment; return its output."""
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=True).stdout.strip()


def bake(tmp_path: Path, **answers: str) -> Path:
    """Bake into tmp_path/out with these answers; return the project folder."""
    out = tmp_path / "out"
    return Path(cookiecutter(str(ROOT), no_input=True, extra_context=answers, output_dir=str(out)))


def test_post_gen_hook_reads_every_answer_it_renders_and_knows_the_placeholder_owner():
    hook = load_hook("post_gen_project")
    assert DEFAULTS["github_owner"] == hook.PLACEHOLDER_OWNER
    assert hook.answer(json.dumps(HOSTILE_TEXT)) == " ".join(HOSTILE_TEXT.split())


def test_bake_without_a_git_identity_commits_and_lets_the_user_commit_as_the_prompts_author(
    tmp_path, no_git_identity, capfd
):
    project = bake(tmp_path, author_name="Ada Lovelace", author_email="ada@example.com")
    assert "Initial commit from cookiecutter-ml-cd" in git(project, "log", "--format=%s")
    assert git(project, "config", "--local", "user.name") == "Ada Lovelace"
    assert git(project, "config", "--local", "user.email") == "ada@example.com"
    assert "commits as Ada Lovelace <ada@example.com>" in capfd.readouterr().out
    (project / "NOTES.md").write_text("mine\n")
    git(project, "add", "NOTES.md")
    git(project, "commit", "--quiet", "-m", "My change")  # the tutorial's commits, on a machine like this one
    assert git(project, "log", "-1", "--format=%an <%ae> %s") == "Ada Lovelace <ada@example.com> My change"


def test_bake_with_hostile_author_text_still_gives_git_a_one_line_identity(tmp_path, no_git_identity):
    project = bake(tmp_path, author_name=HOSTILE_TEXT, author_email="o'brien@example.com")
    assert git(project, "config", "--local", "user.name") == " ".join(HOSTILE_TEXT.split())
    assert git(project, "config", "--local", "user.email") == "o'brien@example.com"


def test_bake_leaves_an_existing_git_identity_alone(tmp_path, no_git_identity):
    (no_git_identity / ".gitconfig").write_text("[user]\n\tname = Grace\n\temail = grace@example.com\n")
    project = bake(tmp_path, author_name="Ada Lovelace")
    local = subprocess.run(["git", "config", "--local", "--get-regexp", "^user\\."], cwd=project, capture_output=True)
    assert local.returncode == 1 and local.stdout == b""  # nothing set locally: git keeps using Grace


def test_bake_with_the_placeholder_owner_warns_once_and_says_so_atop_the_readme(tmp_path, capfd):
    project = bake(tmp_path, init_git="False")
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("WARNING:")]
    assert len(warnings) == 1 and "github_owner" in warnings[0] and DEFAULTS["github_owner"] in warnings[0]
    first_lines = (project / "README.md").read_text().splitlines()[:6]
    assert any("placeholder GitHub owner" in line and DEFAULTS["github_owner"] in line for line in first_lines)


def test_bake_with_a_real_owner_neither_warns_nor_leaves_a_note(tmp_path, capfd):
    project = bake(tmp_path, init_git="False", github_owner="acme")
    assert "WARNING" not in capfd.readouterr().err
    readme = (project / "README.md").read_text()
    assert "placeholder" not in readme and readme.startswith("# Fraud Detector\n\nA fraud-detection model")
    assert 'source="https://github.com/acme/fraud-detector"' in (project / "Dockerfile").read_text()
