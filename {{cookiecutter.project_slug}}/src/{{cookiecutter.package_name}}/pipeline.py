"""The local CD pipeline: an ordered list of small named stages, each saying what it did."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from . import sources, staging
from .config import Settings
from .console import Console
from .data import read_csv
from .features import FEATURES, Feature
from .gate import run_gate, write_outputs
from .registry import Registry
from .service import MAX_BATCH, MAX_BODY_BYTES
from .train import train


class StageFailed(Exception):
    """A stage found a problem; the pipeline stops and production stays as it was."""


@dataclass
class Run:
    """What the stages share: settings, the synthetic week (if any), and what earlier stages produced."""

    settings: Settings
    week: int | None = None
    run_tests: bool = True
    all_tests: bool = False
    library_upgrade: bool = False
    console: Console = field(default_factory=Console)
    train_csv: Path = Path()
    holdout_csv: Path = Path()
    data: sources.DataFiles | None = None
    candidate: Path = Path()
    version: str = ""
    notes: dict = field(default_factory=dict)
    staging_url: str = ""  # the staging service, while the pipeline runs
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # closed when the run ends

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


# The tests marked slow (whole stories, processes, servers) run in `pytest`, tox and CI, not before a local deploy.
# Hypothesis's pytest plugin is left out too: it imports Hypothesis at the end of every run, a second more, and
# only the slow fuzz tests use it (a test using Hypothesis still runs without the plugin).
FAST_TEST_OPTIONS = ["-m", "not server and not slow", "-p", "no:hypothesispytest"]


def run_tests(run: Run) -> None:
    """Run the project's tests: all but those marked slow, unless --all-tests."""
    if not run.run_tests:
        run.say("SKIPPED on request (--skip-tests): the tests did not run")
        return
    command = [sys.executable, "-u", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if not run.all_tests:
        command += FAST_TEST_OPTIONS
    output = []
    # streamed line by line, so a terminal shows the tests' progress and the log keeps their whole report
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as tests:
        for line in tests.stdout:
            output.append(line.rstrip())
            run.detail(output[-1])
    if tests.returncode:
        raise StageFailed("tests failed:\n" + "\n".join(output[-40:]))
    summary = [line for line in output if line]
    left_out = "" if run.all_tests else "; the slow ones run in tox and CI (or --all-tests)"
    run.say((summary[-1] if summary else "no test output") + left_out)


def make_data(run: Run) -> None:
    """Write the configured data source's training and holdout CSVs."""
    run.data = sources.prepare(run.settings, run.week)
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
    auc = json.loads((run.candidate / "metrics.json").read_text())["holdout"]
    run.say(f"holdout AUC {auc['auc']:.4f} (95% CI {auc['ci_low']:.4f} to {auc['ci_high']:.4f})")


def gate_candidate(run: Run) -> None:
    """Compare the candidate with production on the same holdout; block if it is worse."""
    production = run.registry.current("production")
    folder = run.registry.folder(production) if production else None
    result = run_gate(run.candidate, run.holdout_csv, folder, run.settings.gate, run.library_upgrade)
    report = write_outputs(result, run.candidate)
    run.say(f"{result.decision} against production {production or '(none: first deploy)'}; report: {report}")
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
    base = start_staging(run)
    problems, rejected = smoke_test(base, run.version, run.holdout_csv)
    if problems:
        raise StageFailed("; ".join(problems))
    run.say(f"staging on {base} answered {run.version} and rejected {rejected} bad requests with 4xx")


def score_staging(run: Run) -> None:
    """Score the holdout through staging: its answers must be the model file's, and the gate judges them."""
    production = run.registry.current("production")
    folder = run.registry.folder(production) if production else None
    candidate = run.registry.folder(run.version)
    found, result = staging.score_staging(
        start_staging(run), candidate, run.holdout_csv, folder, run.settings.gate, run.library_upgrade
    )
    report = write_outputs(result, run.candidate / "staging")
    if found.differing:
        raise StageFailed(f"{found.message()}; report: {report}")
    run.say(f"{found.rows} holdout rows served as the model file scores them; gate on them: {result.decision}")
    if result.exit_code:
        raise StageFailed("the gate blocked what staging served: " + "; ".join(result.reasons))


def start_staging(run: Run) -> str:
    """The staging service of this run: started on a free 127.0.0.1 port the first time, stopped when the run ends."""
    if not run.staging_url:
        run.staging_url = run.resources.enter_context(staging_server(run.settings.registry))
    return run.staging_url


@contextlib.contextmanager
def staging_server(registry: Path):
    """Serve ``registry``'s staging model on a free 127.0.0.1 port; yield its base URL, then stop it."""
    port = free_port()
    command = [sys.executable, "-m", __package__, "serve", "--stage", "staging", "--port", str(port)]
    # the server must serve this run's registry, not whatever the current folder's settings name
    environment = {**os.environ, "MODEL_REGISTRY": str(Path(registry).resolve())}
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_server(base, server, log)
            yield base
        finally:
            server.send_signal(signal.SIGINT)  # gunicorn's quick shutdown: every request sent has its answer
            server.wait(timeout=15)


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


def smoke_requests(features: tuple[Feature, ...], row: list[float]) -> tuple[dict, dict[str, tuple[bytes, str]]]:
    """A valid request built from a real row, and each kind of bad request as (body, content type)."""
    cast = {"float": float, "int": int, "bool": bool}
    valid = {f.name: cast[f.kind](value) for f, value in zip(features, row, strict=True)}
    first = features[0].name
    bad: dict[str, object] = {
        "missing field": {k: v for k, v in valid.items() if k != first},
        "unknown field": {**valid, "unknown_field": 1},
        "wrong type": {**valid, first: "text"},
        "NaN": {**valid, first: float("nan")},
        "Infinity": {**valid, first: float("inf")},
        "empty list": [],
        "batch over the maximum": [valid] * (MAX_BATCH + 1),
    }
    # out of range: only where the declaration sets a bound (an all-bool table, or one with every bound None, has none)
    for f in features:
        if f.kind != "bool" and f.minimum is not None:
            bad[f"{f.name} below its minimum"] = {**valid, f.name: f.minimum - 1}
            break
        if f.kind != "bool" and f.maximum is not None:
            bad[f"{f.name} above its maximum"] = {**valid, f.name: f.maximum + 1}
            break
    requests = {name: (json.dumps(body).encode(), "application/json") for name, body in bad.items()}
    requests["body not JSON"] = (b"{not json", "application/json")
    requests["wrong content type"] = (json.dumps(valid).encode(), "text/plain")
    requests["body over the size limit"] = (
        b" " * (MAX_BODY_BYTES + 1) + json.dumps(valid).encode(),
        "application/json",
    )
    return valid, requests


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def smoke_test(base: str, version: str, holdout_csv: Path) -> tuple[list[str], int]:
    """Check a running service; return its problems (none when it answers well) and how many bad requests it got."""
    valid, bad = smoke_requests(FEATURES, read_csv(holdout_csv).X[0].tolist())
    problems = []
    status, body = call(base + "/predict", json.dumps(valid).encode())
    if status != 200 or body.get("model_version") != version:
        problems.append(f"a valid request got {status} {body}, expected 200 from {version}")
    for name, (payload, content_type) in bad.items():
        status, body = call(base + "/predict", payload, content_type)
        if not 400 <= status < 500:
            problems.append(f"{name} got {status}, expected a 4xx: {body}")
    return problems, len(bad)


def call(url: str, body: bytes | None = None, content_type: str = "application/json") -> tuple[int, dict]:
    """GET (no body) or POST raw bytes; return the status and the JSON answer."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        # a 413 may come before the server reads the whole body: a broken pipe here, then read that answer
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request("GET" if body is None else "POST", parts.path, body, {"Content-Type": content_type})
        response = connection.getresponse()
        text = response.read()
        try:
            return response.status, json.loads(text) if text.strip() else {}
        except ValueError:  # not JSON: keep the start of it for the message
            return response.status, {"body": text[:200].decode(errors="replace")}
    finally:
        connection.close()


def wait_for_server(base: str, server: subprocess.Popen, log: IO[str], seconds: float = 60) -> None:
    """wait_until_ready, and when the server dies or stays unready, the error carries its last lines of output."""
    try:
        wait_until_ready(base, server, seconds)
    except StageFailed as failure:
        log.seek(0)
        last = "\n".join(log.read().splitlines()[-20:]) or "(nothing)"
        raise StageFailed(f"{failure}; the server's last lines:\n{last}") from None


def wait_until_ready(base: str, server: subprocess.Popen | None = None, seconds: float = 60) -> None:
    """Poll /ready until it answers 200; fail if the server process exits or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise StageFailed(f"the server exited with code {server.returncode}; run `serve` to see why")
        try:
            if call(base + "/ready")[0] == 200:
                return
        except (OSError, http.client.HTTPException, ValueError):
            pass
        time.sleep(0.05)
    raise StageFailed(f"{base} was not ready within {seconds:g} s")
