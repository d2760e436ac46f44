"""The pre-gen hook refuses bad answers with one clear line and leaves nothing behind."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import ROOT, UNSUPPORTED
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter


def load_hook():
    """Import hooks/pre_gen_project.py as a module (it is valid Python before rendering)."""
    spec = importlib.util.spec_from_file_location("pre_gen_project", ROOT / "hooks" / "pre_gen_project.py")
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
