"""The local CD pipeline: an ordered list of small named stages, each saying what it did."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from . import staging
from .artifact import METRICS_FILE, read_json
from .config import Settings
from .data import DataFiles, prepare
from .gate import run_gate, write_outputs
from .registry import Registry
from .staging import StageFailed
from .train import train

SUMMARY_WIDTH = 29  # as wide as "[10/10] promote_to_production"
LOGS = Path("logs")


def log_path(name: str) -> Path:
    """A new log file for a run of ``name``, named after the time it starts: logs/pipeline-20260101-120000.log."""
    return LOGS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"


class Console:
    """Shows a summary line per stage (every line when verbose), logs every line; a terminal sees a stage's progress."""

    def __init__(self, screen: TextIO | None = None, verbose: bool = False, log: Path | None = None) -> None:
        """Write to ``screen`` (standard output, looked up at each write) and append every line to ``log``."""
        self._screen, self.verbose, self.log_path = screen, verbose, log
        self._log: TextIO | None = None
        self._label = self._result = ""  # the running stage's label, and its last message
        self._started, self._drawn = 0.0, False  # when it started; whether a progress line is on the screen

    @property
    def screen(self) -> TextIO:
        """Where lines go: standard output unless a screen was given."""
        return self._screen or sys.stdout

    def __enter__(self) -> Console:
        """Open the log file."""
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc) -> None:
        """Close the log file and say where it is, as the run's last line."""
        if self._log is not None:
            self._log.close()
            self._log = None
            self.show(f"log: {self.log_path}")

    def show(self, text: str) -> None:
        """A line for the screen whatever the verbosity (a summary, a failure), also logged."""
        self._write(text, screen=True)

    def say(self, text: str) -> None:
        """A stage's message: the last one is the stage's result on its summary line."""
        self._result = text
        self.detail(text)

    def detail(self, text: str) -> None:
        """Long output (a test run's report): logged, shown when verbose, else the progress line of a terminal."""
        for line in text.splitlines() or [""]:
            self._write(line, screen=self.verbose)
            self._progress(line)

    @contextlib.contextmanager
    def stage(self, label: str) -> Iterator[None]:
        """Run one stage: its header when verbose, progress on a terminal, then its summary line with the time."""
        self._label, self._result, self._started = label, "", time.monotonic()
        self._write(label, screen=self.verbose)
        self._progress("")
        try:
            yield
        except BaseException:
            self._result = self._result or "failed"
            raise
        finally:
            self.show(self._summary(self._result or "done"))

    def _summary(self, text: str) -> str:
        """The stage's line: its label, the seconds since it started, and ``text``."""
        return f"{self._label.ljust(SUMMARY_WIDTH)} {time.monotonic() - self._started:6.1f} s  {text}"

    def _progress(self, line: str) -> None:
        """On a terminal, when not verbose, redraw the running stage's line with its latest output."""
        if not self.verbose and self.screen.isatty():
            self._draw(self._summary(line)[: shutil.get_terminal_size().columns - 1], progress=True)

    def _write(self, line: str, screen: bool) -> None:
        """Append a line to the log, and to the screen when asked."""
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()
        if screen:
            self._draw(line + "\n")

    def _draw(self, text: str, progress: bool = False) -> None:
        """Erase the progress line, if one is drawn, then write ``text``: a line, or the new progress line."""
        self.screen.write(("\r\x1b[K" if self._drawn else "") + text)
        self._drawn = progress
        self.screen.flush()


@dataclass
class Run:
    """What the stages share: settings, the synthetic week (if any), and what earlier stages produced."""

    settings: Settings
    week: int | None = None
    run_tests: bool = True
    all_tests: bool = False
    library_upgrade: bool = False
    console: Console = field(default_factory=Console)
    data: DataFiles | None = None
    train_csv: Path = Path()
    holdout_csv: Path = Path()
    candidate: Path = Path()
    version: str = ""
    staging_url: str = ""  # the staging service, once a stage started it; it stops when the run ends
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def registry(self) -> Registry:
        """The registry this run deploys into."""
        return Registry(self.settings.registry)

    def say(self, text: str) -> None:
        """Report what a stage did; its last report is the stage's one line of output."""
        self.console.say(text)

    def detail(self, text: str) -> None:
        """Long output of a stage: in the log, and on the screen with --verbose."""
        self.console.detail(text)


# The tests marked slow (whole stories, processes, servers) run in `pytest`, tox and CI, not before a local deploy;
# nor does Hypothesis's pytest plugin, a second more at the end of every run (a test using Hypothesis still runs).
FAST_TEST_OPTIONS = ["-m", "not server and not slow", "-p", "no:hypothesispytest"]


def run_tests(run: Run) -> None:
    """Run the project's tests: all but those marked slow, unless --all-tests."""
    if not run.run_tests:
        run.say("SKIPPED on request (--skip-tests): the tests did not run")
        return
    command = [sys.executable, "-u", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += [] if run.all_tests else FAST_TEST_OPTIONS
    output = []
    # streamed line by line, so a terminal shows the tests' progress and the log keeps their whole report
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as tests:
        for line in tests.stdout:
            output.append(line.rstrip())
            run.detail(output[-1])
    if tests.returncode:
        raise StageFailed("tests failed:\n" + "\n".join(output[-40:]))
    summary = next((line for line in reversed(output) if line), "no test output")
    run.say(summary + ("" if run.all_tests else "; the slow ones run in tox and CI (or --all-tests)"))


def make_data(run: Run) -> None:
    """Write the configured data source's training and holdout CSVs."""
    run.data = prepare(run.settings, run.week)
    run.train_csv, run.holdout_csv = run.data.train, run.data.holdout
    run.say(f"{run.data.description}: {run.train_csv} and {run.holdout_csv}")


def train_model(run: Run) -> None:
    """Fit a candidate model."""
    lineage = run.data.lineage if run.data else None
    run.candidate, metadata = train(
        run.train_csv, run.holdout_csv, run.settings.artifacts, run.settings.seed, source=lineage
    )
    run.version = metadata["version"]
    run.say(f"trained {run.version} in {run.candidate}")


def evaluate_model(run: Run) -> None:
    """Report the candidate's holdout AUC."""
    auc = read_json(run.candidate / METRICS_FILE)["holdout"]
    run.say(f"holdout AUC {auc['auc']:.4f} (95% CI {auc['ci_low']:.4f} to {auc['ci_high']:.4f})")


def gate_candidate(run: Run) -> None:
    """Compare the candidate with production on the same holdout; block if it is worse."""
    folder = run.registry.current_folder("production")
    result = run_gate(run.candidate, run.holdout_csv, folder, run.settings.gate, run.library_upgrade)
    report = write_outputs(result, run.candidate)
    production = folder.name if folder else "(none: first deploy)"
    run.say(f"{result.decision} against production {production}; report: {report}")
    if result.exit_code:
        raise StageFailed("the gate blocked the candidate: " + "; ".join(result.reasons))


def register_model(run: Run) -> None:
    """Copy the candidate into the registry."""
    run.registry.register(run.candidate, reason=f"pipeline: {run.data.description if run.data else run.train_csv}")
    run.say(f"registered {run.version}")


def promote_to_staging(run: Run) -> None:
    """Point staging at the candidate."""
    run.registry.promote(run.version, "staging", reason="passed the gate")
    run.say(f"staging -> {run.version}")


def smoke_test_staging(run: Run) -> None:
    """Serve staging on a free 127.0.0.1 port and check that it answers well and rejects bad input."""
    if not run.staging_url:  # the service stops when the run ends
        run.staging_url = run.resources.enter_context(staging.staging_server(run.settings.registry))
    run.say("staging on " + staging.smoke_test(run.staging_url, run.version, run.holdout_csv))


def score_staging(run: Run) -> None:
    """Score the holdout through staging: its answers must be the model file's, and the gate judges them."""
    if not run.staging_url:
        raise StageFailed("score_staging scores the service that smoke_test_staging starts: list that stage first")
    production, candidate = run.registry.current_folder("production"), run.registry.folder(run.version)
    found, result = staging.score_staging(
        run.staging_url, candidate, run.holdout_csv, production, run.settings.gate, run.library_upgrade
    )
    run.say(staging.verdict(found, result, write_outputs(result, run.candidate / "staging")))


def promote_to_production(run: Run) -> None:
    """Point production at the candidate; running services swap it in."""
    previous = run.registry.promote(run.version, "production", reason="passed gate, staging smoke test and scoring")
    run.say(f"production: {previous or '(none)'} -> {run.version}")


# ----------------------------------------------------------------------------
# EDIT HERE: the pipeline. Add a stage by writing a function above and listing it.
# ----------------------------------------------------------------------------
STAGES: list[Callable[[Run], None]] = [
    run_tests,
    make_data,
    train_model,
    evaluate_model,
    gate_candidate,
    register_model,
    promote_to_staging,
    smoke_test_staging,
    score_staging,
    promote_to_production,
]


def run_pipeline(run: Run, stages: list[Callable[[Run], None]] = STAGES) -> int:
    """Run the stages in order, one line each; stop at the first failure with a message naming the stage."""
    with run.resources:  # the staging service, once a stage started it, stops when the run ends
        for number, stage in enumerate(stages, start=1):
            try:
                with run.console.stage(f"[{number}/{len(stages)}] {stage.__name__}"):
                    stage(run)
            except Exception as error:  # any failure stops the pipeline before production moves
                run.console.show(f"FAILED at stage {stage.__name__}: {error}")
                run.console.show(f"production is unchanged: {run.registry.current('production') or '(none)'}")
                return 1
    return 0
