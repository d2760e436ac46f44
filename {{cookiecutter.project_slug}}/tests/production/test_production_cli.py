"""The production loop's commands: guard, simulate, `monitor` on the live log, and `serve`'s log and shadow."""

import json

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.cli import PROG, main
from {{ cookiecutter.package_name }}.config import TABLE

from cli_run import exits, run


@pytest.mark.parametrize("name", ["guard", "simulate", "reproduce", "bisect"])
def test_the_layer_adds_its_commands_with_their_own_help(capsys, name):
    code, out, _ = exits(capsys, name, "--help")
    assert code == 0 and out.startswith(f"usage: {PROG} {name}")


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "notaurl"],
        ["simulate", "http://127.0.0.1:8080", "--batch", "5000"],
        ["guard", "--min-rows", "5"],
    ],
    ids=["simulate not a URL", "simulate batch over the maximum", "guard too few rows"],
)
def test_a_usage_error_is_one_line_on_stderr_and_exit_code_2(capsys, args):
    code, out, err = exits(capsys, *args)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith(PROG) and "error:" in err and "--help" in err


def test_monitor_with_no_week_or_data_reads_the_live_log(project, model_dir, capsys):
    assert run(capsys, "register", str(model_dir))[0] == 0
    assert run(capsys, "promote", model_dir.name)[0] == 0
    code, out, _ = run(capsys, "monitor")  # live: nothing logged yet
    assert (code, out.splitlines()[-2:]) == (0, ["OK: no retrain needed", "report: monitor/report.md"])


@pytest.mark.slow
def test_guard_waits_then_reports_then_makes_a_rollback(project, model_dir, second_model_dir, write_live, capsys):
    for version in (model_dir, second_model_dir):
        assert run(capsys, "register", str(version))[0] == 0
        assert run(capsys, "promote", version.name)[0] == 0
    code, out, _ = run(capsys, "guard")
    assert (code, out.splitlines()[0]) == (3, "## Guard: WAITING")
    rng = np.random.default_rng(0)
    y = rng.random(2_000) < 0.1
    replaced_scores = np.clip(0.5 * y + 0.5 * rng.random(2_000), 0, 1)
    write_live(second_model_dir.name, y, rng.random(2_000), shadow=model_dir.name, shadow_score=replaced_scores)
    code, out, _ = run(capsys, "guard", "--min-rows", "1000", "--no-rollback")
    assert (code, out.splitlines()[0]) == (1, "## Guard: ROLLBACK NEEDED")
    assert (project / "registry" / "stages" / "production").read_text() == f"{second_model_dir.name}\n"
    code, out, _ = run(capsys, "guard", "--min-rows", "1000", "--out", "evidence")
    assert (code, out.splitlines()[0]) == (1, "## Guard: ROLLED BACK")
    assert json.loads((project / "evidence" / "guard.json").read_text())["decision"] == "rollback"
    last = run(capsys, "history")[1].splitlines()[-1]
    assert f"rollback production {second_model_dir.name} -> {model_dir.name}" in last and "guard: on 2000 live" in last
    code, out, _ = run(capsys, "guard")
    assert (code, out.splitlines()[0]) == (0, "## Guard: NOTHING TO GUARD")


def test_serve_logs_production_predictions_into_the_configured_folder(project, exec_calls, monkeypatch):
    (project / "pyproject.toml").write_text(f'[tool.{TABLE}]\npredictions = "live/predictions"\n')
    assert main(["serve", "--shadow", "previous"]) == 0
    ((command, environment),) = exec_calls
    assert "gunicorn" in command
    assert (environment["PREDICTION_LOG"], environment["MODEL_SHADOW"]) == ("live/predictions", "previous")
    monkeypatch.setenv("PREDICTION_LOG", "stdout")
    main(["serve"])
    assert exec_calls[-1][1]["PREDICTION_LOG"] == "stdout"  # the environment wins over pyproject.toml


def test_a_staging_service_logs_nothing_unless_asked(project, exec_calls):
    assert main(["serve", "--stage", "staging"]) == 0
    assert "PREDICTION_LOG" not in exec_calls[0][1] and "MODEL_SHADOW" not in exec_calls[0][1]
