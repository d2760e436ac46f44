"""The command line: every subcommand listed, one-line errors, and a full registry round trip."""

import json
import socket

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.cli import PROG, main
from {{ cookiecutter.package_name }}.config import TABLE

SUBCOMMANDS = [
    "data",
    "train",
    "evaluate",
    "gate",
    "register",
    "promote",
    "rollback",
    "history",
    "models",
    "diff",
    "monitor",
    "guard",
    "simulate",
    "serve",
    "smoke-test",
    "pipeline",
]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder as the working directory, with small data and fixed gate thresholds."""
    (tmp_path / "pyproject.toml").write_text(
        f"[tool.{TABLE}]\ntrain_rows = 4000\nholdout_rows = 4000\n"
        f"[tool.{TABLE}.gate]\nmin_auc = 0.8\nmax_auc_drop = 0.01\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODEL_REGISTRY", raising=False)
    return tmp_path


def run(capsys, *args):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def exits(capsys, *args):
    """Run the CLI where argparse exits; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_help_lists_every_subcommand(capsys):
    code, out, _ = exits(capsys, "--help")
    assert code == 0
    for name in SUBCOMMANDS:
        assert f"    {name}" in out, name


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_its_own_help(capsys, name):
    code, out, _ = exits(capsys, name, "--help")
    assert code == 0
    assert out.startswith(f"usage: {PROG} {name}")


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--bogus"],
        ["data", "--week", "two"],
        [],
        ["promote", "v1", "--stage", "qa"],
        ["train", "--seed", "-1"],
        ["serve", "--port", "99999"],
        ["serve", "--workers", "0"],
        ["gate", "v1", "--min-auc", "nan"],
        ["smoke-test", "notaurl", "--version", "v1"],
        ["smoke-test", "http://127.0.0.1:99999", "--version", "v1"],
        ["smoke-test", "http://127.0.0.1:8080", "--version", "v1", "--wait", "-5"],
        ["simulate", "notaurl"],
        ["simulate", "http://127.0.0.1:8080", "--batch", "5000"],
        ["guard", "--min-rows", "5"],
    ],
    ids=[
        "unknown flag",
        "bad value",
        "no subcommand",
        "bad choice",
        "negative seed",
        "port out of range",
        "no workers",
        "NaN floor",
        "not a URL",
        "URL port out of range",
        "negative wait",
        "simulate not a URL",
        "simulate batch over the maximum",
        "guard too few rows",
    ],
)
def test_a_usage_error_is_one_line_on_stderr_and_exit_code_2(capsys, args):
    code, out, err = exits(capsys, *args)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(f"{PROG}") and "error:" in err and "--help" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["train", "--train", "missing.csv", "--holdout", "missing.csv"], "missing.csv"),
        (["register", "missing-model"], "missing-model"),
        (["evaluate", "missing-model"], "missing-model"),
        (["promote", "missing-version"], "missing-version"),
    ],
    ids=["train", "register", "evaluate", "promote"],
)
def test_a_missing_file_is_one_clear_line_and_a_failure(project, capsys, args, named):
    code, out, err = run(capsys, *args)
    assert code == 1
    assert len(err.splitlines()) == 1
    assert err.startswith(f"{PROG}: error:") and named in err
    assert "Traceback" not in err


def test_data_train_register_promote_history_models_diff_rollback_round_trip(project, capsys):
    code, out, _ = run(capsys, "data")
    assert code == 0
    assert out.split() == ["data/week-00/train.csv", "data/week-00/holdout.csv"]
    assert (project / "data" / "week-00" / "train.csv").is_file()

    code, out, _ = run(capsys, "train")
    first, first_folder = out.split()
    assert code == 0 and (project / first_folder / "model.skops").is_file()
    assert run(capsys, "register", first_folder)[:2] == (0, f"{first}\n")
    assert run(capsys, "promote", first, "--reason", "first deploy")[:2] == (0, f"production: (none) -> {first}\n")

    code, out, _ = run(capsys, "train", "--seed", "1")
    second, second_folder = out.split()
    assert code == 0 and second != first
    assert run(capsys, "register", second_folder)[:2] == (0, f"{second}\n")
    assert run(capsys, "promote", second, "--stage", "staging")[0] == 0
    assert run(capsys, "promote", second)[:2] == (0, f"production: {first} -> {second}\n")

    code, out, _ = run(capsys, "models")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert sorted(line.split()[0] for line in lines) == sorted([first, second])
    assert any(line.startswith(second) and line.endswith("production") for line in lines)
    assert all(" AUC 0." in line for line in lines)

    code, out, _ = run(capsys, "diff", first, second)
    assert code == 0
    assert "parameters.seed:\n  - 0\n  + 1" in out
    assert "version:" in out
    assert out.rstrip().endswith("field(s) differ")

    assert run(capsys, "rollback", "--reason", "seed 1 looks odd")[:2] == (0, f"production: {second} -> {first}\n")
    code, out, _ = run(capsys, "history")
    actions = [line.split()[1] for line in out.splitlines()]
    assert code == 0
    assert actions == ["register", "promote", "register", "promote", "promote", "rollback"]
    assert "seed 1 looks odd" in out.splitlines()[-1]
    assert run(capsys, "rollback")[0] == 1  # the first deploy replaced nothing


def test_data_with_one_class_only_is_one_clear_line(project, model_dir, week0, tmp_path, capsys):
    assert run(capsys, "register", str(model_dir))[0] == 0
    assert run(capsys, "promote", model_dir.name)[0] == 0
    header, *rows = week0[1].read_text().splitlines()
    one_class = tmp_path / "no-fraud.csv"
    one_class.write_text("\n".join([header, *[row for row in rows if row.endswith(",0")]]) + "\n")
    code, _, err = run(capsys, "evaluate", str(model_dir), "--data", str(one_class))
    assert code == 1
    assert err.startswith(f"{PROG}: error: need at least 2 positive") and len(err.splitlines()) == 1, err
    code, out, _ = run(capsys, "monitor", "--data", str(one_class))
    assert code == 0 and "too few labels" in out  # no AUC to judge; drift is still checked


def test_models_names_every_stage_a_version_holds(project, model_dir, capsys):
    assert run(capsys, "register", str(model_dir))[0] == 0
    assert run(capsys, "promote", model_dir.name, "--stage", "staging")[0] == 0
    assert run(capsys, "promote", model_dir.name)[0] == 0
    code, out, _ = run(capsys, "models")
    assert code == 0 and out.rstrip().endswith("staging production")


def test_evaluate_prints_the_auc_with_its_interval(project, model_dir, capsys):
    code, out, _ = run(capsys, "evaluate", str(model_dir))
    result = json.loads(out)
    assert code == 0
    assert result["ci_low"] < result["auc"] < result["ci_high"]
    assert result["positives"] + result["negatives"] == 4_000


def test_gate_exit_codes_are_0_pass_1_blocked_2_undecided(project, model_dir, capsys):
    code, out, _ = run(capsys, "gate", str(model_dir), "--out", "first")
    assert (code, out.splitlines()[0]) == (0, "## AUC gate: PASSED")
    assert (project / "first" / "gate.json").is_file()
    code, out, _ = run(capsys, "gate", str(model_dir), "--min-auc", "0.99", "--out", "strict")
    assert (code, out.splitlines()[0]) == (1, "## AUC gate: BLOCKED")
    code, out, _ = run(capsys, "gate", "missing-model", "--out", "missing")
    assert (code, out.splitlines()[0]) == (2, "## AUC gate: BLOCKED (could not decide)")
    assert json.loads((project / "missing" / "gate.json").read_text())["decision"] == "undecided"


def test_gate_compares_with_the_registered_production_model(project, model_dir, second_model_dir, capsys):
    assert run(capsys, "register", str(model_dir))[0] == 0
    assert run(capsys, "promote", model_dir.name)[0] == 0
    code, out, _ = run(capsys, "gate", str(second_model_dir), "--out", "report")
    assert code == 0
    assert f"| production | {model_dir.name} |" in out


def test_gate_library_upgrade_leaves_out_a_production_model_saved_by_another_scikit_learn(
    project, model_dir, second_model_dir, capsys
):
    assert run(capsys, "register", str(model_dir))[0] == 0
    assert run(capsys, "promote", model_dir.name)[0] == 0
    metadata_file = project / "registry" / "models" / model_dir.name / "metadata.json"
    metadata_file.write_text(json.dumps({**json.loads(metadata_file.read_text()), "sklearn_version": "0.24.2"}))
    code, out, _ = run(capsys, "gate", str(second_model_dir), "--out", "undeclared")
    assert code == 2 and "--library-upgrade" in out
    code, out, _ = run(capsys, "gate", str(second_model_dir), "--out", "declared", "--library-upgrade")
    assert code == 0 and f"Production {model_dir.name} was not compared" in out


def test_monitor_exits_1_when_a_retrain_is_due(project, model_dir, capsys):
    code, _, err = run(capsys, "monitor", "--week", "0")
    assert code == 2 and err == f"{PROG}: error: no production model to monitor; run the pipeline first\n"
    assert run(capsys, "register", str(model_dir))[0] == 0
    assert run(capsys, "promote", model_dir.name)[0] == 0
    code, out, _ = run(capsys, "monitor")  # live: nothing logged yet
    assert (code, out.splitlines()[-2:]) == (0, ["OK: no retrain needed", "report: monitor/report.md"])
    code, out, _ = run(capsys, "monitor", "--week", "4")
    assert code == 1
    assert "ALERT: card_present drifted" in out
    assert json.loads((project / "monitor" / "monitor.json").read_text())["retrain_advised"] is True


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


def test_smoke_test_of_a_service_that_never_answers_fails_with_one_line(project, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    code, out, err = run(capsys, "smoke-test", url, "--version", "v1", "--wait", "1")
    assert code == 1
    assert err == f"FAILED: {url} was not ready within 1 s\n"
