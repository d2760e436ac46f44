"""The command line: every subcommand listed, one-line errors, and a full registry round trip."""

import csv
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.cli import PROG, main
from {{ cookiecutter.package_name }}.config import TABLE
from {{ cookiecutter.package_name }}.data import read_csv
from {{ cookiecutter.package_name }}.features import LABEL

from cli_run import exits, run

SUBCOMMANDS = [
    "data",
    "train",
    "declare",
    "evaluate",
    "gate",
    "register",
    "promote",
    "rollback",
    "history",
    "models",
    "diff",
    "monitor",
    "serve",
    "smoke-test",
    "pipeline",
]


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
        ["declare", "data.csv"],
        [],
        ["promote", "v1", "--stage", "qa"],
        ["train", "--seed", "-1"],
        ["serve", "--port", "99999"],
        ["serve", "--workers", "0"],
        ["gate", "v1", "--min-auc", "nan"],
        ["smoke-test", "notaurl", "--version", "v1"],
        ["smoke-test", "http://127.0.0.1:99999", "--version", "v1"],
        ["smoke-test", "http://127.0.0.1:8080", "--version", "v1", "--wait", "-5"],
        ["pipeline", "--skip-tests", "--all-tests"],
    ],
    ids=[
        "unknown flag",
        "bad value",
        "declare without --label",
        "no subcommand",
        "bad choice",
        "negative seed",
        "port out of range",
        "no workers",
        "NaN floor",
        "not a URL",
        "URL port out of range",
        "negative wait",
        "pipeline skip and all tests",
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
        (["declare", "missing.csv", "--label", LABEL], "missing.csv"),
    ],
    ids=["train", "register", "evaluate", "promote", "declare"],
)
def test_a_missing_file_is_one_clear_line_and_a_failure(project, capsys, args, named):
    code, out, err = run(capsys, *args)
    assert code == 1
    assert len(err.splitlines()) == 1
    assert err.startswith(f"{PROG}: error:") and named in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["gate", "evaluate", "promote"])
def test_every_command_names_an_unregistered_version_with_the_same_message(project, capsys, command):
    extra = ["--out", "report"] if command == "gate" else []
    code, out, err = run(capsys, command, "20990101-000000-deadbeef", *extra)
    assert code == (2 if command == "gate" else 1)  # the gate's 1 is "blocked", 2 "could not decide"
    assert err.startswith(f"{PROG}: error: ") and len(err.splitlines()) == 1
    assert err.endswith("no version '20990101-000000-deadbeef' in registry; see the `models` command\n")
    assert out == ("" if command != "gate" else (project / "report" / "report.md").read_text())


@pytest.mark.slow
def test_data_train_register_promote_history_models_diff_rollback_round_trip(project, capsys):
    code, out, _ = run(capsys, "data")
    assert code == 0
    train_csv, holdout_csv = (Path(line) for line in out.splitlines())
    assert read_csv(train_csv).y.size and read_csv(holdout_csv).y.size

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
    assert all(re.search(r" AUC [01]\.\d{4}", line) for line in lines)

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


def write_holdout(data_files, path, keep=lambda row: True, relabel=lambda label: label):
    """A copy of the holdout CSV with only the rows ``keep`` accepts and each label passed through ``relabel``."""
    with data_files[1].open(newline="") as file:
        rows = [row for row in csv.DictReader(file) if keep(row)]
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, LABEL: relabel(row[LABEL])} for row in rows)
    return path


def test_data_with_one_class_only_is_one_clear_line(project, model_dir, data_files, tmp_path, capsys):
    assert run(capsys, "register", str(model_dir))[0] == 0
    assert run(capsys, "promote", model_dir.name)[0] == 0
    one_class = write_holdout(data_files, tmp_path / "one-class.csv", keep=lambda row: float(row[LABEL]) == 0)
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


def test_evaluate_prints_the_auc_with_its_interval(project, model_dir, data_files, capsys):
    code, out, _ = run(capsys, "evaluate", str(model_dir))
    result = json.loads(out)
    assert code == 0
    assert result["ci_low"] <= result["auc"] <= result["ci_high"] and result["ci_low"] < result["ci_high"]
    assert result["positives"] + result["negatives"] == len(read_csv(data_files[1]).y)


@pytest.mark.slow
def test_gate_exit_codes_are_0_pass_1_blocked_2_undecided(project, model_dir, floor_above_the_model, capsys):
    code, out, _ = run(capsys, "gate", str(model_dir), "--out", "first")
    assert (code, out.splitlines()[0]) == (0, "## AUC gate: PASSED")
    assert (project / "first" / "gate.json").is_file()
    code, out, _ = run(capsys, "gate", str(model_dir), "--min-auc", str(floor_above_the_model), "--out", "strict")
    assert (code, out.splitlines()[0]) == (1, "## AUC gate: BLOCKED")
    code, out, _ = run(capsys, "gate", "missing-model", "--out", "missing")
    assert (code, out.splitlines()[0]) == (2, "## AUC gate: BLOCKED (could not decide)")
    assert json.loads((project / "missing" / "gate.json").read_text())["decision"] == "undecided"


@pytest.mark.slow
def test_gate_compares_with_the_registered_production_model(project, model_dir, second_model_dir, capsys):
    assert run(capsys, "register", str(model_dir))[0] == 0
    assert run(capsys, "promote", model_dir.name)[0] == 0
    code, out, _ = run(capsys, "gate", str(second_model_dir), "--out", "report")
    assert code == 0
    assert f"| production | {model_dir.name} |" in out


@pytest.mark.slow
def test_gate_library_upgrade_leaves_out_a_production_model_saved_by_another_scikit_learn(
    project, model_dir, second_model_dir, capsys
):
    assert run(capsys, "register", str(model_dir))[0] == 0
    assert run(capsys, "promote", model_dir.name)[0] == 0
    metadata_file = project / "registry" / "models" / model_dir.name / "metadata.json"
    metadata_file.write_text(json.dumps({**json.loads(metadata_file.read_text()), "sklearn_version": "0.24.2"}))
    artifact.write_manifest(metadata_file.parent)  # as that scikit-learn's save() wrote it
    code, out, _ = run(capsys, "gate", str(second_model_dir), "--out", "undeclared")
    assert code == 2 and "--library-upgrade" in out
    code, out, _ = run(capsys, "gate", str(second_model_dir), "--out", "declared", "--library-upgrade")
    assert code == 0 and f"Production {model_dir.name} was not compared" in out


def test_monitor_exits_1_when_a_retrain_is_due(project, model_dir, data_files, tmp_path, capsys):
    code, _, err = run(capsys, "monitor", "--data", str(data_files[1]))
    assert code == 2 and err == f"{PROG}: error: no production model to monitor; run the pipeline first\n"
    assert run(capsys, "register", str(model_dir))[0] == 0
    assert run(capsys, "promote", model_dir.name)[0] == 0
    code, out, _ = run(capsys, "monitor", "--data", str(data_files[1]))  # the holdout it was deployed with
    assert (code, out.splitlines()[-2:]) == (0, ["OK: no retrain needed", "report: monitor/report.md"])
    # labels that turned against the model: its AUC falls far below what it had at deploy time
    flipped = write_holdout(data_files, tmp_path / "flipped.csv", relabel=lambda label: str(1 - int(float(label))))
    code, out, _ = run(capsys, "monitor", "--data", str(flipped))
    assert code == 1 and "ALERT: AUC" in out
    assert json.loads((project / "monitor" / "monitor.json").read_text())["retrain_advised"] is True


def test_monitor_without_a_week_or_data_says_what_it_needs(project, monkeypatch, capsys):
    monkeypatch.setattr("{{ cookiecutter.package_name }}.cli.layers", list)  # the hello world's command line, whichever layers are added
    code, out, err = run(capsys, "monitor")
    assert (code, out) == (2, "")
    needs = "monitor needs --week N (a week of the synthetic example) or --data CSV (labelled rows)"
    assert err == f"{PROG}: error: {needs}\n"


def test_smoke_test_of_a_service_that_never_answers_fails_with_one_line(project, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    code, out, err = run(capsys, "smoke-test", url, "--version", "v1", "--wait", "0.2")
    assert code == 1
    assert err == f"FAILED: {url} was not ready within 0.2 s\n"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], (True, False, False)),
        (["--skip-tests"], (False, False, False)),
        (["--all-tests", "--library-upgrade"], (True, True, True)),
    ],
    ids=["default", "skip-tests", "all-tests"],
)
def test_pipeline_flags_reach_the_run(project, monkeypatch, capsys, flags, expected):
    runs = []
    monkeypatch.setattr("{{ cookiecutter.package_name }}.pipeline.run_pipeline", lambda run: runs.append(run) or 0)
    code, _, _ = run(capsys, "pipeline", *flags)
    (pipeline_run,) = runs
    assert code == 0
    assert (pipeline_run.run_tests, pipeline_run.all_tests, pipeline_run.library_upgrade) == expected


def test_serve_runs_gunicorn_on_the_chosen_stage_of_the_registry(project, exec_calls):
    assert main(["serve", "--stage", "staging", "--port", "8081"]) == 0
    ((command, environment),) = exec_calls
    assert "gunicorn" in command and "127.0.0.1:8081" in command
    assert (environment["MODEL_REGISTRY"], environment["MODEL_STAGE"]) == ("registry", "staging")


@pytest.fixture
def csv_project(project, data_files):
    """The project folder with one CSV as its data source: the configured holdout, split again."""
    (project / "pyproject.toml").write_text(
        f"[tool.{TABLE}.gate]\nmin_auc = 0.8\nmax_auc_drop = 0.01\n"
        f'[tool.{TABLE}.data]\nsource = "csv"\npath = {json.dumps(str(data_files[1]))}\n'
    )
    return project


@pytest.mark.parametrize(
    "args",
    [
        ["data"],
        ["train"],
        ["evaluate", "MODEL"],
        ["gate", "MODEL"],
        ["monitor"],
        ["smoke-test", "http://127.0.0.1:9", "--version", "v1"],
        ["pipeline", "--skip-tests"],
    ],
    ids=lambda args: args[0],
)
def test_week_with_a_csv_source_is_refused_with_one_line(csv_project, model_dir, capsys, args):
    args = [str(model_dir) if arg == "MODEL" else arg for arg in args]
    code, out, err = run(capsys, *args, "--week", "1")
    assert code == (2 if args[0] in ("gate", "monitor") else 1)  # their exit 1 is a decision
    refusal = f'--week needs source = "synthetic"; [tool.{TABLE}.data] in pyproject.toml says "csv"'
    assert err == f"{PROG}: error: {refusal}\n"
    assert not (csv_project / "data").exists() and not (csv_project / "artifacts").exists()


def test_a_csv_source_is_split_once_and_every_command_reads_its_holdout(csv_project, capsys):
    code, out, _ = run(capsys, "data")
    train_csv, holdout_csv = (Path(line) for line in out.splitlines())
    assert code == 0 and train_csv.parent == holdout_csv.parent == Path("data") / "split"
    code, out, _ = run(capsys, "train")
    version, folder = out.split()
    metadata = json.loads((Path(folder) / "metadata.json").read_text())
    assert metadata["data_source"]["source"] == "csv"
    assert metadata["holdout_data"]["path"] == str(holdout_csv)
    code, out, _ = run(capsys, "evaluate", folder)
    assert code == 0 and json.loads(out)["positives"] == read_csv(holdout_csv).positives


def test_week_and_data_together_are_refused(project, model_dir, data_files, capsys):
    code, _, err = run(capsys, "evaluate", str(model_dir), "--week", "0", "--data", str(data_files[1]))
    assert code == 1 and len(err.splitlines()) == 1 and "--week" in err


@pytest.mark.parametrize("args", [["--help"], ["history"], ["models"], ["serve", "--help"]], ids=" ".join)
def test_commands_that_need_no_model_start_without_the_model_libraries(tmp_path, args):
    # `serve` replaces its process with gunicorn: importing scikit-learn there first would only delay the workers
    script = (
        "import sys\n"
        "from {{ cookiecutter.package_name }}.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('sklearn', 'scipy', 'matplotlib', 'skops', 'flask', 'pydantic')\n"
        "print('loaded:', sorted(name for name in heavy if name in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.stderr.splitlines()[-1] == "loaded: []", done.stderr
