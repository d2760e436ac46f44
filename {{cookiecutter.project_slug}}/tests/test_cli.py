"""The command line: its 12 subcommands, one-line errors, and the round trips from training to rollback."""

import csv
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import artifact, cli, pipeline
from {{ cookiecutter.package_name }}.cli import PROG, main
from {{ cookiecutter.package_name }}.config import TABLE
from {{ cookiecutter.package_name }}.data import read_csv, sha256_of
from {{ cookiecutter.package_name }}.features import LABEL

from cli_run import exits, run

SUBCOMMANDS = [
    "train",
    "declare",
    "gate",
    "register",
    "promote",
    "rollback",
    "history",
    "diff",
    "monitor",
    "serve",
    "smoke-test",
    "pipeline",
]
UNREGISTERED = "20990101-000000-deadbeef"
NOT_REGISTERED = f"no version '{UNREGISTERED}' in registry; see the `history` command"


def test_help_lists_the_12_subcommands_and_each_has_its_own_help(monkeypatch, capsys):
    monkeypatch.setattr(cli, "layers", list)  # the hello world's command line, whichever layers are installed
    code, out, _ = exits(capsys, "--help")
    assert code == 0 and "{" + ",".join(SUBCOMMANDS) + "}" in out
    for name in SUBCOMMANDS:
        code, out, _ = exits(capsys, name, "--help")
        assert code == 0 and out.startswith(f"usage: {PROG} {name}"), name


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--bogus"],
        ["train", "--week", "two"],
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


def write_holdout(data_files, path, keep=lambda row: True, relabel=lambda label: label):
    """A copy of the holdout CSV with only the rows ``keep`` accepts and each label passed through ``relabel``."""
    with data_files[1].open(newline="") as file:
        rows = [row for row in csv.DictReader(file) if keep(row)]
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, LABEL: relabel(row[LABEL])} for row in rows)
    return path


def free_url() -> str:
    """The URL of a 127.0.0.1 port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


# the command, its exit code (1 failed; for gate and monitor, 1 is a decision and 2 a failure), what its line says;
# gate writes its report even when it cannot decide: --out keeps it out of the session's model folder
FAILURES = {
    "train, missing CSVs": (["train", "--train", "missing.csv", "--holdout", "missing.csv"], 1, "missing.csv"),
    "register, missing folder": (["register", "missing-model"], 1, "missing-model"),
    "declare, missing CSV": (["declare", "missing.csv", "--label", LABEL], 1, "missing.csv"),
    "promote, unregistered": (["promote", UNREGISTERED], 1, NOT_REGISTERED),
    "diff, unregistered": (["diff", UNREGISTERED, UNREGISTERED], 1, NOT_REGISTERED),
    "gate, unregistered": (["gate", UNREGISTERED, "--out", "report"], 2, f"could not decide: {NOT_REGISTERED}"),
    "gate, one class": (["gate", "MODEL", "--data", "ONE_CLASS", "--out", "report"], 2, "need at least 2 positive"),
    "gate, --week and --data": (["gate", "MODEL", "--week", "0", "--data", "HOLDOUT", "--out", "report"], 2, "--week"),
    "monitor, no production": (["monitor", "--data", "HOLDOUT"], 2, "no production model to monitor; run the pipeline"),
    "smoke-test, no answer": (
        ["smoke-test", "URL", "--version", "v1", "--wait", "0.2"],
        1,
        "URL was not ready within 0.2 s",
    ),
}


@pytest.mark.parametrize(("args", "code", "says"), FAILURES.values(), ids=FAILURES)
def test_an_expected_failure_is_one_line_naming_its_cause(project, model_dir, data_files, capsys, args, code, says):
    one_class = write_holdout(data_files, project / "one-class.csv", keep=lambda row: float(row[LABEL]) == 0)
    given = {"MODEL": str(model_dir), "HOLDOUT": str(data_files[1]), "ONE_CLASS": str(one_class), "URL": free_url()}
    args, says = [given.get(arg, arg) for arg in args], says.replace("URL", given["URL"])
    exit_code, _, err = run(capsys, *args)
    assert exit_code == code
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("FAILED: " if args[0] == "smoke-test" else f"{PROG}: error: ") and says in err


@pytest.mark.slow
def test_train_register_promote_history_diff_rollback_round_trip(project, capsys):
    code, out, _ = run(capsys, "train")
    first, first_folder = out.split()
    assert code == 0 and (project / first_folder / "model.skops").is_file()
    # train wrote the configured source's CSVs and measured the holdout AUC with its interval on them
    metadata = artifact.read_json(project / first_folder / artifact.METADATA_FILE)
    holdout = read_csv(Path(metadata["holdout_data"]["path"]))
    assert read_csv(Path(metadata["train_data"]["path"])).y.size
    auc = artifact.read_json(project / first_folder / artifact.METRICS_FILE)["holdout"]
    assert auc["ci_low"] <= auc["auc"] <= auc["ci_high"] and auc["ci_low"] < auc["ci_high"]
    assert auc["positives"] + auc["negatives"] == len(holdout.y)
    assert run(capsys, "register", first_folder)[:2] == (0, f"{first}\n")
    assert run(capsys, "promote", first, "--reason", "first deploy")[:2] == (0, f"production: (none) -> {first}\n")

    code, out, _ = run(capsys, "train", "--seed", "1")
    second, second_folder = out.split()
    assert code == 0 and second != first
    assert run(capsys, "register", second_folder)[:2] == (0, f"{second}\n")
    assert run(capsys, "promote", second, "--stage", "staging")[0] == 0
    assert run(capsys, "promote", second)[:2] == (0, f"production: {first} -> {second}\n")

    code, out, _ = run(capsys, "history")
    versions = out.splitlines()[:2]  # the versions with their AUC and stages, then the events
    assert all(re.match(r"\S+  AUC [01]\.\d{4}", line) for line in versions)
    assert {line.split()[0]: line.split()[3:] for line in versions} == {first: [], second: ["staging", "production"]}

    code, out, _ = run(capsys, "diff", first, second)
    assert code == 0
    assert "parameters.seed:\n  - 0\n  + 1" in out
    assert "version:" in out
    assert out.rstrip().endswith("field(s) differ")

    assert run(capsys, "rollback", "--reason", "seed 1 looks odd")[:2] == (0, f"production: {second} -> {first}\n")
    code, out, _ = run(capsys, "history")
    versions, events = out.splitlines()[:2], out.splitlines()[2:]
    assert code == 0
    assert {line.split()[0]: line.split()[3:] for line in versions} == {first: ["production"], second: ["staging"]}
    assert [line.split()[1] for line in events] == ["register", "promote", "register", "promote", "promote", "rollback"]
    assert "seed 1 looks odd" in events[-1]
    assert run(capsys, "rollback")[0] == 1  # the first deploy replaced nothing


@pytest.mark.slow
def test_gate_exit_codes_are_0_pass_1_blocked_2_undecided(
    project, model_dir, data_files, floor_above_the_model, capsys
):
    code, out, _ = run(capsys, "gate", str(model_dir), "--out", "first")
    assert (code, out.splitlines()[0]) == (0, "## AUC gate: PASSED")
    auc_with_interval = r" \| [01]\.\d+ \| [01]\.\d+ to [01]\.\d+ \|"
    assert re.search(rf"\| candidate \| {model_dir.name}{auc_with_interval}", out)
    assert (project / "first" / "gate.json").is_file()
    code, out, _ = run(capsys, "gate", str(model_dir), "--min-auc", str(floor_above_the_model), "--out", "strict")
    assert (code, out.splitlines()[0]) == (1, "## AUC gate: BLOCKED")
    code, out, _ = run(capsys, "gate", "missing-model", "--out", "missing")
    assert (code, out.splitlines()[0]) == (2, "## AUC gate: BLOCKED (could not decide)")
    assert out == (project / "missing" / "report.md").read_text()  # CI posts the report whatever the decision
    assert json.loads((project / "missing" / "gate.json").read_text())["decision"] == "undecided"
    # --data: the AUC and its interval on another labelled CSV (here the training rows)
    code, out, _ = run(capsys, "gate", str(model_dir), "--data", str(data_files[0]), "--out", "other")
    rows = read_csv(data_files[0])
    assert code == 0 and f"Holdout: {len(rows.y)} rows, {rows.positives} positives." in out


@pytest.mark.slow
def test_gate_compares_with_production_unless_a_library_upgrade_is_declared(
    project, model_dir, second_model_dir, capsys
):
    assert run(capsys, "register", str(model_dir))[0] == 0
    assert run(capsys, "promote", model_dir.name)[0] == 0
    code, out, _ = run(capsys, "gate", str(second_model_dir), "--out", "report")
    assert code == 0
    assert f"| production | {model_dir.name} |" in out
    # as if production had been saved by another scikit-learn, which cannot load here
    metadata_file = project / "registry" / "models" / model_dir.name / "metadata.json"
    metadata_file.write_text(json.dumps({**json.loads(metadata_file.read_text()), "sklearn_version": "0.24.2"}))
    artifact.write_manifest(metadata_file.parent)  # as that scikit-learn's save() wrote it
    code, out, _ = run(capsys, "gate", str(second_model_dir), "--out", "undeclared")
    assert code == 2 and "--library-upgrade" in out
    code, out, _ = run(capsys, "gate", str(second_model_dir), "--out", "declared", "--library-upgrade")
    assert code == 0 and f"Production {model_dir.name} was not compared" in out


def test_monitor_says_what_it_needs_and_exits_1_only_when_a_retrain_is_due(
    project, model_dir, data_files, monkeypatch, capsys
):
    monkeypatch.setattr(cli, "layers", list)  # the hello world's command line, whichever layers are installed
    needs = "monitor needs --week N (a week of the synthetic example) or --data CSV (labelled rows)"
    assert run(capsys, "monitor") == (2, "", f"{PROG}: error: {needs}\n")
    assert run(capsys, "register", str(model_dir))[0] == 0
    assert run(capsys, "promote", model_dir.name)[0] == 0
    code, out, _ = run(capsys, "monitor", "--data", str(data_files[1]))  # the holdout it was deployed with
    assert (code, out.splitlines()[-2:]) == (0, ["OK: no retrain needed", "report: monitor/report.md"])
    one_class = write_holdout(data_files, project / "one-class.csv", keep=lambda row: float(row[LABEL]) == 0)
    code, out, _ = run(capsys, "monitor", "--data", str(one_class))
    assert code == 0 and "too few labels" in out  # no AUC to judge; drift is still checked
    # labels that turned against the model: its AUC falls far below what it had at deploy time
    flipped = write_holdout(data_files, project / "flipped.csv", relabel=lambda label: str(1 - int(float(label))))
    code, out, _ = run(capsys, "monitor", "--data", str(flipped))
    assert code == 1 and "ALERT: AUC" in out
    assert json.loads((project / "monitor" / "monitor.json").read_text())["retrain_advised"] is True


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
    monkeypatch.setattr(pipeline, "run_pipeline", lambda run: runs.append(run) or 0)
    code, _, _ = run(capsys, "pipeline", *flags)
    (pipeline_run,) = runs
    assert code == 0
    assert (pipeline_run.run_tests, pipeline_run.all_tests, pipeline_run.library_upgrade) == expected


def test_serve_runs_gunicorn_with_gunicorn_conf_py_on_the_chosen_stage(project, exec_calls, capsys):
    (project / "gunicorn.conf.py").rename(project / "elsewhere.py")
    missing = "no gunicorn.conf.py here: run serve in the project's folder, beside pyproject.toml"
    assert run(capsys, "serve") == (1, "", f"{PROG}: error: {missing}\n")
    assert exec_calls == []
    (project / "elsewhere.py").rename(project / "gunicorn.conf.py")
    assert main(["serve", "--stage", "staging", "--port", "8081"]) == 0
    ((command, environment),) = exec_calls
    assert command[command.index("--config") + 1] == str((project / "gunicorn.conf.py").resolve())
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
        ["train"],
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


def test_a_csv_source_is_split_once_and_train_and_gate_read_its_holdout(csv_project, capsys):
    code, out, _ = run(capsys, "train")
    version, folder = out.split()
    metadata = artifact.read_json(Path(folder) / artifact.METADATA_FILE)
    train_csv, holdout_csv = (Path(metadata[name]["path"]) for name in ("train_data", "holdout_data"))
    assert code == 0 and metadata["data_source"]["source"] == "csv"
    assert train_csv.parent == holdout_csv.parent == Path("data") / "split"
    holdout = read_csv(holdout_csv)
    assert artifact.read_json(Path(folder) / artifact.METRICS_FILE)["holdout"]["positives"] == holdout.positives
    code, out, _ = run(capsys, "gate", folder)
    assert f"Holdout: {len(holdout.y)} rows, {holdout.positives} positives." in out
    assert sha256_of(holdout_csv) == metadata["holdout_data"]["sha256"]  # the gate found the split, did not redo it


@pytest.mark.parametrize("args", [["--help"], ["history"], ["serve", "--help"]], ids=" ".join)
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
