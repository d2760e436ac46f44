"""The local CD pipeline: stages in order, a failure stops it before production moves; its console and log."""

import io
import json
import re
import subprocess
import sys
from dataclasses import replace

import pytest

from {{ cookiecutter.package_name }} import artifact, pipeline
from {{ cookiecutter.package_name }}.config import GateSettings
from {{ cookiecutter.package_name }}.data import prepare, sha256_of
from {{ cookiecutter.package_name }}.pipeline import Console, Run, StageFailed, log_path, run_pipeline

# every stage except the staging server, which only the full-pipeline test starts
WITHOUT_SERVER = [
    pipeline.run_tests,
    pipeline.make_data,
    pipeline.train_model,
    pipeline.evaluate_model,
    pipeline.gate_candidate,
    pipeline.register_model,
    pipeline.promote_to_staging,
    pipeline.promote_to_production,
]


@pytest.fixture
def settings(tmp_path, configured, gate_settings):
    """The configured data source, kept small, with a pipeline writing under tmp_path."""
    return replace(
        configured,
        registry=tmp_path / "registry",
        data_dir=tmp_path / "data",
        artifacts=tmp_path / "artifacts",
        gate=gate_settings,
    )


def new_run(settings, week=None):
    """A pipeline run (tests skipped) whose console writes to a buffer instead of the screen."""
    return Run(settings, week, run_tests=False, console=Console(screen=io.StringIO()))


def shown(run) -> list[str]:
    """The lines the run has shown so far."""
    return run.console.screen.getvalue().splitlines()


def test_production_moves_last_after_the_gate_and_the_scored_staging():
    order = [stage.__name__ for stage in pipeline.STAGES]
    assert order[0] == "run_tests"
    assert order[-1] == "promote_to_production"
    steps = ["train_model", "gate_candidate", "register_model", "promote_to_staging", "smoke_test_staging"]
    steps += ["score_staging"]
    assert [order.index(step) for step in steps] == sorted(order.index(step) for step in steps)


@pytest.mark.parametrize("all_tests", [False, True], ids=["default", "all-tests"])
def test_the_test_stage_leaves_the_slow_tests_to_tox_and_ci_unless_asked(
    settings, monkeypatch, pytestconfig, all_tests
):
    commands = []

    class PassingTests:
        """Stands in for the pytest process: records its command, prints a summary and exits 0."""

        def __init__(self, command, **_):
            commands.append(command)
            self.stdout, self.returncode = iter(["....\n", "4 passed in 0.01s\n"]), 0

        def __enter__(self):
            return self

        def __exit__(self, *_):
            return False

    monkeypatch.setattr(subprocess, "Popen", PassingTests)
    run = Run(settings, all_tests=all_tests, console=Console(screen=io.StringIO(), verbose=True))
    pipeline.run_tests(run)
    (command,) = commands
    assert command[:4] == [sys.executable, "-u", "-m", "pytest"]
    said = shown(run)[-1]
    if all_tests:
        assert "-m" not in command[4:] and said == "4 passed in 0.01s"
    else:
        assert command[-4:] == ["-m", "not server and not slow", "-p", "no:hypothesispytest"]
        assert said == "4 passed in 0.01s; the slow ones run in tox and CI (or --all-tests)"
    # pytest selects everything for a marker name it does not know, even with --strict-markers
    declared = {marker.split(":")[0] for marker in pytestconfig.getini("markers")}
    deselected = {word for word in pipeline.FAST_TEST_OPTIONS[1].split() if word not in ("not", "and", "or")}
    assert deselected == {"server", "slow"} and deselected <= declared


@pytest.mark.slow
def test_the_full_pipeline_deploys_through_a_staging_server_to_production(settings, monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "1")  # one gunicorn worker is enough for a smoke test
    run = new_run(settings)
    assert run_pipeline(run) == 0, shown(run)
    assert run.registry.current("production") == run.registry.current("staging") == run.version
    lines = shown(run)
    assert len(lines) == len(pipeline.STAGES)  # one line per stage, nothing else
    assert lines[0].startswith(f"[1/{len(pipeline.STAGES)}] run_tests") and "SKIPPED on request" in lines[0]
    assert f"answered {run.version} and rejected" in lines[-3]
    assert "holdout rows served as the model file scores them; gate on them: pass" in lines[-2]
    assert lines[-1].endswith(f"production: (none) -> {run.version}")
    assert (run.registry.folder(run.version) / "report.md").is_file()


def train_with_seed_1(run):
    """The train_model stage with the model's seed changed, on the data make_data wrote: a harmless retrain."""
    run.settings = replace(run.settings, seed=1)
    pipeline.train_model(run)


@pytest.mark.slow
def test_a_retrain_is_gated_against_production_and_deployed_and_the_history_names_its_data(settings):
    first = new_run(settings)
    assert run_pipeline(first, WITHOUT_SERVER) == 0
    second = new_run(settings)
    retrain = [train_with_seed_1 if stage is pipeline.train_model else stage for stage in WITHOUT_SERVER]
    assert run_pipeline(second, retrain) == 0, shown(second)
    assert second.registry.current("production") == second.version != first.version
    assert f"pass against production {first.version}" in "\n".join(shown(second))
    assert second.registry.previous_production() == first.version
    registered = [entry["reason"] for entry in second.registry.history() if entry["action"] == "register"]
    assert registered == [f"pipeline: {first.data.description}", f"pipeline: {second.data.description}"]


def test_a_failing_stage_stops_the_pipeline_names_it_and_leaves_production_alone(settings, registry):
    settings = replace(settings, registry=registry.root)
    production = registry.current("production")
    reached = []

    def broken_stage(run):
        raise StageFailed("something is off")

    def later_stage(run):
        reached.append(run.version)

    run = new_run(settings)
    stages = [pipeline.make_data, pipeline.train_model, broken_stage, later_stage, pipeline.promote_to_production]
    assert run_pipeline(run, stages) == 1
    assert reached == []
    assert registry.current("production") == production
    *stages, failure, unchanged = shown(run)
    assert [line.split()[1] for line in stages] == ["make_data", "train_model", "broken_stage"]
    assert stages[-1].startswith("[3/5] broken_stage") and stages[-1].endswith(" s  failed")
    assert failure == "FAILED at stage broken_stage: something is off"
    assert unchanged == f"production is unchanged: {production}"


@pytest.mark.slow
def test_the_gate_stops_a_worse_candidate_and_an_undeclared_library_upgrade(settings, floor_above_the_model):
    blocked = new_run(replace(settings, gate=GateSettings(min_auc=floor_above_the_model, max_auc_drop=0.01)))
    assert run_pipeline(blocked, WITHOUT_SERVER) == 1
    assert any(line.startswith("FAILED at stage gate_candidate: the gate blocked") for line in shown(blocked))
    assert blocked.registry.versions() == []
    assert blocked.registry.current("production") is None
    assert (blocked.candidate / "report.md").is_file()  # the report explains the block

    first = new_run(settings)
    assert run_pipeline(first, WITHOUT_SERVER) == 0
    # as if production had been saved by the scikit-learn minor version before the one installed now
    metadata_file = first.registry.folder(first.version) / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    major, minor = (int(part) for part in metadata["sklearn_version"].split(".")[:2])
    metadata_file.write_text(json.dumps({**metadata, "sklearn_version": f"{major}.{minor - 1}.0"}))
    artifact.write_manifest(metadata_file.parent)  # as that scikit-learn's save() wrote it

    undeclared = new_run(replace(settings, seed=1))
    assert run_pipeline(undeclared, WITHOUT_SERVER) == 1
    failure = next(line for line in shown(undeclared) if line.startswith("FAILED"))
    assert "gate_candidate" in failure and "--library-upgrade" in failure
    assert undeclared.registry.current("production") == first.version

    declared = new_run(replace(settings, seed=1))
    declared.library_upgrade = True
    assert run_pipeline(declared, WITHOUT_SERVER) == 0, shown(declared)
    assert declared.registry.current("production") == declared.version
    assert "was not compared" in (declared.candidate / "report.md").read_text()


def test_make_data_writes_the_configured_sources_files(settings, source):
    run = Run(settings, run_tests=False, console=Console(screen=io.StringIO(), verbose=True))
    pipeline.make_data(run)
    assert (run.train_csv, run.holdout_csv) == (run.data.train, run.data.holdout)
    assert sha256_of(run.holdout_csv) == sha256_of(source.holdout)
    assert run.data.lineage == prepare(settings).lineage
    assert shown(run) == [f"{run.data.description}: {run.train_csv} and {run.holdout_csv}"]


class Terminal(io.StringIO):
    """A screen that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def two_stages(console: Console) -> None:
    """A quiet stage and a chatty one."""
    with console.stage("[1/2] first"):
        console.say("did the first thing")
    with console.stage("[2/2] second"):
        console.detail("a long report\nof many lines")
        console.say("an early word")
        console.say("the result")


def test_the_console_shows_a_line_per_stage_or_with_verbose_every_line_and_logs_every_line(tmp_path):
    screen = io.StringIO()
    with Console(screen=screen, log=tmp_path / "run.log") as console:
        two_stages(console)
    first, second, where = screen.getvalue().splitlines()
    assert re.fullmatch(r"\[1/2\] first +\d+\.\d s  did the first thing", first)
    assert re.fullmatch(r"\[2/2\] second +\d+\.\d s  the result", second)
    assert where == f"log: {tmp_path / 'run.log'}"
    logged = (tmp_path / "run.log").read_text().splitlines()
    assert logged[:2] == ["[1/2] first", "did the first thing"]
    assert logged[4:8] == ["a long report", "of many lines", "an early word", "the result"]
    assert logged[-1].startswith("[2/2] second") and logged[-1].endswith("the result")

    verbose = io.StringIO()
    with Console(screen=verbose, verbose=True, log=tmp_path / "verbose.log") as console:
        two_stages(console)
    assert verbose.getvalue().splitlines()[:-1] == (tmp_path / "verbose.log").read_text().splitlines()

    path = log_path("pipeline")  # each run logs to a new file named after the command and its start
    assert path.parent.name == "logs" and re.fullmatch(r"pipeline-\d{8}-\d{6}\.log", path.name)


def test_only_a_terminal_sees_progress_while_a_stage_runs():
    screen = Terminal()
    console = Console(screen=screen)
    with console.stage("[1/1] long"):
        assert screen.getvalue().startswith("[1/1] long")  # at once, before the stage says anything
        console.detail("...... [ 40%]")
        assert screen.getvalue().endswith(" s  ...... [ 40%]") and "\n" not in screen.getvalue()
        console.say("done well")
    output = screen.getvalue()
    assert output.count("\n") == 1 and output.rsplit("\r\x1b[K", 1)[1].endswith(" s  done well\n")

    screen = io.StringIO()
    console = Console(screen=screen)
    with console.stage("[1/1] long"):
        console.detail("working")
    assert "\r" not in screen.getvalue() and len(screen.getvalue().splitlines()) == 1
