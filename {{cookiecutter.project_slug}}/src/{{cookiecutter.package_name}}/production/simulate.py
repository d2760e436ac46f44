"""Replay a week of synthetic traffic against a running service, then write that week's labels after a delay."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from .. import artifact
from ..features import FEATURES, Feature
from ..registry import Registry, RegistryError
from ..service import ANSWER
from .feedback import label_record, prediction_record, write_jsonl
from .predictions import REQUEST_ID

LIVE_SEED_OFFSET = 30_000  # live traffic is neither the training sample (seed) nor the holdout (seed + 10,000)
CALENDAR_YEAR = 2026  # the simulated calendar: week N's labels arrive in ISO week N of 2026 (week 0: the week before)
CAST = {"float": float, "int": int, "bool": bool}


class SimulationError(Exception):
    """The service answered a replayed request with something other than scores."""


@dataclass
class Replay:
    """What the service answered: one entry per row, in the order sent."""

    keys: list[tuple[str, int]] = field(default_factory=list)  # (request id, index in the request)
    versions: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    requests: int = 0


def label_time(week: int) -> datetime:
    """When week ``week``'s labels arrive on the simulated calendar: noon UTC on the Sunday of its ISO week."""
    first_monday = datetime.fromisocalendar(CALENDAR_YEAR, 1, 1).replace(tzinfo=timezone.utc)
    return first_monday + timedelta(weeks=week - 1, days=6, hours=12)


def request_rows(X: np.ndarray, features: tuple[Feature, ...] = FEATURES) -> list[dict]:
    """Rows as request bodies: JSON values of each feature's declared kind."""
    casts = [CAST[f.kind] for f in features]
    return [{f.name: cast(v) for f, cast, v in zip(features, casts, row, strict=True)} for row in X.tolist()]


def post(base_url: str, body: list[dict], request_id: str, timeout: float = 30) -> tuple[int, dict, str]:
    """POST a batch to /predict with its X-Request-ID; return the status, the JSON answer and the id to label by.

    That id is the one the service answered with (its own, which its prediction log records), or the one sent.
    """
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
        connection.request("POST", parts.path.rstrip("/") + "/predict", json.dumps(body), headers)
        response = connection.getresponse()
        text = response.read()
    finally:
        connection.close()
    answered_id = response.getheader("X-Request-ID") or ""
    key = answered_id if REQUEST_ID.fullmatch(answered_id) else request_id
    try:
        return response.status, json.loads(text), key
    except ValueError:
        return response.status, {"body": text[:200].decode(errors="replace")}, key


def replay(base_url: str, rows: list[dict], batch: int, run: str) -> Replay:
    """Send the rows in batches, one request id per batch; stop at the first answer that is not scores."""
    answered = Replay()
    for start in range(0, len(rows), batch):  # bounded: one request per batch, no retries
        body, request_id = rows[start : start + batch], f"sim-{run}-{start // batch:05d}"
        status, answer, key = post(base_url, body, request_id)
        scores = answer.get(ANSWER) if isinstance(answer, dict) else None
        if status != 200 or not isinstance(scores, list) or len(scores) != len(body):
            raise SimulationError(f"{base_url} answered request {request_id} with {status}: {str(answer)[:200]}")
        answered.keys += [(key, index) for index in range(len(body))]
        answered.versions += [str(answer.get("model_version"))] * len(body)
        answered.scores += [float(score) for score in scores]
        answered.requests += 1
    return answered


def log_predictions(folder: Path, run: str, rows: list[dict], answered: Replay, registry: Registry) -> Path:
    """Write the prediction log from the answers, for a service that keeps none (shadow: the replaced version)."""
    production, shadow, shadow_scores = registry.current("production"), None, None
    try:
        shadow = registry.previous_production()
        model = artifact.load(registry.folder(shadow))
        X = np.array([[row[f.name] for f in model.features] for row in rows], dtype=float)
        shadow_scores = model.probability(X).round(6).tolist()
    except RegistryError:
        shadow = None  # a first deploy replaced nothing: no shadow
    now = datetime.now(timezone.utc)
    records = [
        prediction_record(
            request_id,
            index,
            now,
            version,
            row,
            score,
            *((shadow, shadow_scores[number]) if shadow and version == production else (None, None)),
        )
        for number, ((request_id, index), version, row, score) in enumerate(
            zip(answered.keys, answered.versions, rows, answered.scores, strict=True)
        )
    ]
    return write_jsonl(folder / f"simulate-{run}.jsonl", records)


def simulate(
    base_url: str,
    week: int,
    rows: int,
    seed: int,
    feedback: Path,
    batch: int = 500,
    label_delay: float = 0,
    predictions: Path | None = None,
    registry: Registry | None = None,
    say=print,
) -> Path:
    """Replay ``rows`` synthetic transactions of ``week``, wait ``label_delay`` seconds, write their labels."""
    from ..synthetic import synthetic_transactions  # the example's generator: the one import of it here

    data = synthetic_transactions(rows, week, seed + LIVE_SEED_OFFSET)
    run = uuid.uuid4().hex[:8]
    bodies = request_rows(data.X)
    answered = replay(base_url, bodies, batch, run)
    versions = ", ".join(f"{v} ({answered.versions.count(v)} rows)" for v in dict.fromkeys(answered.versions))
    say(f"week {week}: sent {rows} transactions in {answered.requests} requests to {base_url}, answered by {versions}")
    if predictions is not None and registry is not None:
        say(f"wrote the prediction log {log_predictions(predictions, run, bodies, answered, registry)}")
    time.sleep(label_delay)  # labels arrive later, as chargebacks do
    arrived = label_time(week)
    labels = [label_record(r, i, int(y), arrived) for (r, i), y in zip(answered.keys, data.y.tolist(), strict=True)]
    path = write_jsonl(feedback / f"week-{week:02d}-{run}.jsonl", labels)
    say(f"wrote {len(labels)} labels ({data.positives} positives, dated {arrived:%Y-%m-%d}) to {path}")
    return path
