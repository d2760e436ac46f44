"""Staging: a service on 127.0.0.1, its smoke test, and scored staging, the test environment that catches the bug.

Staging scores every holdout row over HTTP: its answers must equal the model file's (any difference is skew between
training and serving, such as a column read in another unit), and the gate then judges what staging served.
"""

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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import numpy as np
from scipy import special

from . import artifact
from .config import GateSettings
from .data import read_csv
from .features import FEATURES, Feature
from .gate import GateResult, run_gate
from .service import ANSWER, MAX_BATCH, MAX_BODY_BYTES

BATCH_ROWS = 1_000  # rows per request: the service's largest batch, so a 5,000-row holdout is 5 requests
TOLERANCE = 1e-6  # the service rounds probabilities to 6 decimals: half of that, and room for the float's last bits


class StageFailed(Exception):
    """A stage found a problem; the pipeline stops and production stays as it was."""


@dataclass(frozen=True)
class Skew:
    """How the served scores differ from the model file's: on how many rows, by how much, and through which input."""

    rows: int
    differing: int
    largest: float
    suspects: tuple[str, ...] = ()

    def message(self) -> str:
        """One line for the pipeline's failure: the count, the largest difference and the traced inputs, if any."""
        text = (
            f"staging served other scores than the model file on {self.differing} of {self.rows} holdout rows "
            f"(largest difference {self.largest:.6f}): skew between training and serving"
        )
        reads = f"; the service reads {', '.join(self.suspects)} differently from training" if self.suspects else ""
        return text + reads


def request_rows(features: tuple[Feature, ...], X: np.ndarray) -> list[dict]:
    """The rows of ``X`` as the service's JSON requests carry them: each feature's value in its declared kind."""
    kinds = [{"float": float, "int": int, "bool": bool}[feature.kind] for feature in features]
    return [{f.name: kind(v) for f, kind, v in zip(features, kinds, row, strict=True)} for row in X.tolist()]


def post(base: str, rows: list[dict]) -> list[float]:
    """POST a batch to /predict; the probabilities, or StageFailed naming what the service answered."""
    status, answer = call(base + "/predict", json.dumps(rows).encode(), timeout=60)
    scores = answer.get(ANSWER) if status == 200 and isinstance(answer, dict) else None
    with contextlib.suppress(ValueError, TypeError):  # whatever the scores are, never a traceback
        if isinstance(scores, list) and len(scores) == len(rows):
            return [float(score) for score in scores]
    raise StageFailed(f"staging answered a batch of {len(rows)} holdout rows with {status}: {str(answer)[:200]}")


def served_scores(base: str, features: tuple[Feature, ...], X: np.ndarray) -> np.ndarray:
    """Every row of ``X`` scored by the service at ``base``, in batches of BATCH_ROWS."""
    rows = request_rows(features, X)
    batches = (rows[start : start + BATCH_ROWS] for start in range(0, len(rows), BATCH_ROWS))
    return np.array([score for batch in batches for score in post(base, batch)], dtype=float)


def skew(served: np.ndarray, offline: np.ndarray) -> Skew:
    """Compare served and offline scores row by row, within TOLERANCE (an answer that is no number differs)."""
    difference = np.abs(served - offline)
    largest = float("inf") if np.isnan(difference).any() else float(difference.max(initial=0.0))
    return Skew(len(offline), int((~(difference <= TOLERANCE)).sum()), largest)


def trace(base: str, model: artifact.LoadedModel, X: np.ndarray, found: Skew, served: np.ndarray) -> Skew:
    """Name the inputs the service reads differently from training: a skewed row sent again, one feature changed.

    Where the service's error (in log-odds) moves with a feature, that feature takes part in the skew; a monotone
    model makes this exact for one bad input.
    """
    offline = model.probability(X)
    differing = np.flatnonzero(np.abs(served - offline) > TOLERANCE)
    row = differing[np.argmin(np.abs(offline[differing] - 0.5))]  # the least rounded answer: far from 0 and 1
    probes = np.repeat(X[row : row + 1], len(model.features) + 1, axis=0)
    for column in range(len(model.features)):
        others = np.flatnonzero(X[:, column] != X[row, column])
        if len(others):
            probes[column + 1, column] = X[others[0], column]
    # in a batch as large as the scoring's, so that a path only big batches take is probed too
    batch = np.vstack([probes, X[: max(0, min(BATCH_ROWS, len(X)) - len(probes))]])
    try:
        served_probes = served_scores(base, model.features, batch)[: len(probes)]
    except StageFailed:
        return found
    errors = _logit(served_probes) - _logit(model.probability(probes))
    moved = np.abs(errors[1:] - errors[0]) > 1e-3 * max(1.0, abs(errors[0]))
    suspects = tuple(feature.name for feature, changed in zip(model.features, moved, strict=True) if changed)
    return replace(found, suspects=suspects)


def _logit(p: np.ndarray) -> np.ndarray:
    """Log-odds, clipped away from 0 and 1 (the service rounds to 6 decimals)."""
    return special.logit(np.clip(p, 1e-6, 1 - 1e-6))


def score_staging(
    base: str,
    candidate_dir: Path,
    holdout_csv: Path,
    production_dir: Path | None,
    settings: GateSettings,
    library_upgrade: bool = False,
) -> tuple[Skew, GateResult]:
    """Score the holdout through staging: the skew against the model file, and the gate on what staging served."""
    model = artifact.load(candidate_dir)
    X = read_csv(holdout_csv, model.features).X
    served = served_scores(base, model.features, X)
    found = skew(served, model.probability(X))
    if found.differing:
        found = trace(base, model, X, found, served)
    where = f"the staging service at {base}"
    return found, run_gate(
        candidate_dir, holdout_csv, production_dir, settings, library_upgrade, served=served, scored_by=where
    )


def verdict(found: Skew, result: GateResult, report: Path) -> str:
    """What scored staging says when staging served the model file's scores and the gate passed them; else fails."""
    if found.differing:
        raise StageFailed(f"{found.message()}; report: {report}")
    served = f"{found.rows} holdout rows served as the model file scores them"
    if result.exit_code:
        raise StageFailed(f"{served}, and the gate blocked what staging served: " + "; ".join(result.reasons))
    return f"{served}; gate on them: {result.decision}"


@contextlib.contextmanager
def staging_server(registry: Path):
    """Serve ``registry``'s staging model on a free 127.0.0.1 port; yield its base URL, then stop it."""
    port = free_port()
    command = [sys.executable, "-m", f"{__package__}.cli", "serve", "--stage", "staging", "--port", str(port)]
    # the server must serve this run's registry, not whatever the current folder's settings name
    environment = {**os.environ, "MODEL_REGISTRY": str(Path(registry).resolve())}
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_ready(base, server, log=log)
            yield base
        finally:
            server.send_signal(signal.SIGINT)  # gunicorn's quick shutdown: every request sent has its answer
            server.wait(timeout=15)


def smoke_requests(features: tuple[Feature, ...], row: list[float]) -> tuple[dict, dict[str, tuple[bytes, str]]]:
    """A valid request built from a real row, and each kind of bad request as (body, content type)."""
    (valid,) = request_rows(features, np.array([row]))
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
    # out of range: the first declared bound, if any (an all-bool table, or one with no bounds, has none)
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
    oversized = b" " * (MAX_BODY_BYTES + 1) + json.dumps(valid).encode()
    requests["body over the size limit"] = (oversized, "application/json")
    return valid, requests


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def smoke_test(base: str, version: str, holdout_csv: Path) -> str:
    """Check a running service: it answers a valid row with ``version`` and every bad request with a 4xx."""
    valid, bad = smoke_requests(FEATURES, read_csv(holdout_csv).X[0].tolist())
    problems = []
    status, body = call(base + "/predict", json.dumps(valid).encode())
    if status != 200 or body.get("model_version") != version:
        problems.append(f"a valid request got {status} {body}, expected 200 from {version}")
    for name, (payload, content_type) in bad.items():
        status, body = call(base + "/predict", payload, content_type)
        if not 400 <= status < 500:
            problems.append(f"{name} got {status}, expected a 4xx: {body}")
    if problems:
        raise StageFailed("; ".join(problems))
    return f"{base} answered {version} and rejected {len(bad)} bad requests with 4xx"


def call(
    url: str, body: bytes | None = None, content_type: str = "application/json", timeout: float = 10
) -> tuple[int, dict]:
    """GET (no body) or POST raw bytes; return the status and the JSON answer ({"body": ...} if it is no JSON)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
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


def wait_until_ready(
    base: str, server: subprocess.Popen | None = None, seconds: float = 60, log: IO[str] | None = None
) -> None:
    """Poll /ready until it answers 200; fail if the server exits or time runs out, quoting the end of its ``log``."""
    failure, deadline = f"{base} was not ready within {seconds:g} s", time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            failure = f"the server exited with code {server.returncode}; run `serve` to see why"
            break
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            if call(base + "/ready")[0] == 200:
                return
        time.sleep(0.05)
    if log is not None:
        log.seek(0)
        failure += "; the server's last lines:\n" + ("\n".join(log.read().splitlines()[-20:]) or "(nothing)")
    raise StageFailed(failure)
