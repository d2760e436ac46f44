"""The hooks: pre-gen refuses bad answers with one clear line; post-gen leaves a repository the user can commit to."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEFAULTS, HOSTILE_TEXT, ROOT, UNSUPPORTED
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_hook(name: str = "pre_gen_project"):
    """Import a hook as a module (both are valid Python before rendering)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hook_accepts_the_defaults():
    typed = {key: value for key, value in DEFAULTS.items() if isinstance(value, str) and "{{" not in value}
    assert load_hook().problems(typed) == []


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"python_version": "3.9"}, "python_version"),
        ({"python_version": "3.14"}, "python_version"),
        ({"min_auc": "nan"}, "min_auc"),
        ({"min_auc": ".85"}, "min_auc"),  # TOML reads no leading dot
        ({"min_auc": "0.8\n"}, "min_auc"),
        ({"max_auc_drop": "0.49"}, None),
        ({"max_auc_drop": "0"}, None),
        ({"package_name": "fraud-detector"}, "package_name"),
        ({"project_slug": "fraud--detector"}, "project_slug"),
        ({"project_slug": "-fraud"}, "project_slug"),
        ({"project_name": "Fraud\nDetector"}, "project_name"),
        ({"target": "Fraud Risk"}, "target"),
        ({"target": "churn"}, None),
        ({"record_name": "customer account"}, None),
        ({"record_name": 'row"; import os'}, "record_name"),
        ({"github_owner": "acme-bank"}, None),
        ({"github_owner": "acme\nRUN id"}, "github_owner"),
        ({"github_owner": "-acme"}, "github_owner"),
        ({"author_email": "ada@example.com\nBcc: x@y.z"}, "author_email"),
        ({"author_name": "Ada \U0001f984 Lovelace"}, None),
        ({"author_name": "Ada\x00"}, "author_name"),
        ({"description": "two\nlines\tand a tab"}, None),
        ({"description": "bell\x07"}, "description"),
    ],
)
def test_hook_checks_each_answer(change, key):
    found = load_hook().problems(change)
    if key is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(key)


# ---------------------------------------------------------------------------------------------------------------
# hostile answers: each is refused with one ERROR line, or bakes inert; none ever runs a command
# ---------------------------------------------------------------------------------------------------------------

TOUCH = "touch {marker}"
HOSTILE_ANSWERS = [
    # the review's exploits (issue 20, finding 1), each writing the marker file if it ever runs
    pytest.param({"target": 'fraud"[:5]+str(__import__("os").system("{touch}"))[:0]+"'}, "target", id="target-code"),
    pytest.param(
        {"project_name": '"+str(__import__("os").system(bytes.fromhex("{hex}").decode()))+"'},
        "project_name",
        id="project-name-hex-code",
    ),
    pytest.param({"project_name": 'x"+__import__("os").system("id")+"'}, "project_slug", id="project-name-code"),
    pytest.param({"min_auc": '0.8+__import__("os").system("{touch}")'}, "min_auc", id="min-auc-code"),
    pytest.param({"max_auc_drop": "0.01;__import__('os').system('{touch}')"}, "max_auc_drop", id="drop-code"),
    pytest.param({"github_owner": "acme\nRUN {touch}"}, "github_owner", id="owner-dockerfile-line"),
    pytest.param({"record_name": 'row"+__import__("os").system("{touch}")+"'}, "record_name", id="record-code"),
    pytest.param({"package_name": 'x;__import__("os").system("{touch}")'}, "package_name", id="package-code"),
    pytest.param({"author_email": 'a@b.c", "x": "{touch}'}, "author_email", id="email-toml-key"),
    # free text that must bake, inert, and read back exactly
    pytest.param({"author_name": 'Ada \U0001f984 O\'Brien \\ "quoted"'}, None, id="author-emoji-quotes"),
    pytest.param({"description": '"""; import os; os.system("{touch}") #\n[tool.evil]\nx = 1'}, None, id="desc-toml"),
    pytest.param({"description": "{{ 7 * 7 }} and {% raw %}{{ raw }}{% endraw %}"}, None, id="desc-jinja-arithmetic"),
]


def refused(answers: dict, out: Path, capfd) -> list[str]:
    """Bake with ``answers`` into ``out``, which the pre-gen hook must refuse with nothing written; its ERROR lines."""
    with pytest.raises(FailedHookException):
        cookiecutter(str(ROOT), no_input=True, extra_context=answers, output_dir=str(out))
    assert list(out.iterdir()) == []
    return [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR:")]


def hostile(answers: dict, marker: Path) -> dict:
    """The answers with the marker's path (and its touch command, hex-encoded) filled in."""
    touch = TOUCH.format(marker=marker)
    return {
        key: value.replace("{touch}", touch).replace("{hex}", touch.encode().hex()) for key, value in answers.items()
    }


@pytest.mark.parametrize(("answers", "key"), HOSTILE_ANSWERS)
def test_hostile_answer_is_refused_with_one_error_line_or_bakes_inert(tmp_path, capfd, answers, key):
    marker = tmp_path / "PWNED"
    answers = hostile(answers, marker)
    out = tmp_path / "out"
    if key is not None:
        errors = refused(answers, out, capfd)
        assert len(errors) == 1 and errors[0].startswith(f"ERROR: {key} ")
    else:
        project = Path(
            cookiecutter(str(ROOT), no_input=True, extra_context={**answers, "init_git": False}, output_dir=str(out))
        )
        pyproject = tomllib.loads((project / "pyproject.toml").read_text())
        assert set(pyproject["tool"]) == {"setuptools", "pytest", "ruff", project.name.replace("-", "_")}
        if "author_name" in answers:
            assert pyproject["project"]["authors"][0]["name"] == answers["author_name"]
        if "{{" not in answers.get("description", "{{"):
            assert pyproject["project"]["description"] == answers["description"]
        for path in project.rglob("*.py"):
            compile(path.read_text(), str(path), "exec")
        imported = subprocess.run(
            [sys.executable, "-c", "import features"], cwd=next(project.glob("src/*")), capture_output=True
        )
        assert imported.returncode == 0, imported.stderr
    assert not marker.exists()


def test_an_answer_holding_jinja_code_is_refused_by_the_sandbox_before_anything_runs(tmp_path):
    marker = tmp_path / "PWNED"
    code = "{{ cycler.__init__.__globals__.os.system('" + TOUCH.format(marker=marker) + "') }}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            str(ROOT),
            "-o",
            str(tmp_path / "out"),
            f"project_name={code}",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "Unable to render variable 'project_name'" in result.stdout and "unsafe" in result.stdout
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("answers", "key"), UNSUPPORTED)
def test_bake_refuses_bad_answer_with_one_error_line_and_no_output(tmp_path, capfd, answers, key):
    errors = refused(answers, tmp_path, capfd)
    assert len(errors) == 1 and key in errors[0]


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
