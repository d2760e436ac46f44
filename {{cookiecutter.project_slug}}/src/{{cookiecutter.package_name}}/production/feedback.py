"""Production feedback: the service's prediction log, the labels that arrive later, and the two joined."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..artifact import VERSION_NAME
from ..features import FEATURES, Feature


class FeedbackError(ValueError):
    """A prediction log or feedback file cannot be read, or one of its records is malformed."""


@dataclass(frozen=True)
class Prediction:
    """One row the service scored: who asked, when, which model answered what, and the shadow's score."""

    request_id: str
    index: int
    time: datetime
    model_version: str
    row: dict
    score: float
    shadow_version: str | None
    shadow_score: float | None
    source: str  # "file, line N", for error messages


@dataclass(frozen=True)
class Label:
    """The true outcome of one scored row (1 = positive, e.g. a chargeback), known at ``time``."""

    request_id: str
    index: int
    label: int
    time: datetime


@dataclass(frozen=True)
class Labelled:
    """Scored rows joined with their labels: one entry per row in every array."""

    X: np.ndarray
    y: np.ndarray
    score: np.ndarray
    shadow_score: np.ndarray  # NaN where no shadow model scored the row
    model_version: np.ndarray
    shadow_version: np.ndarray  # "" where no shadow model scored the row
    week: np.ndarray  # ISO week the label arrived in, e.g. "2026-W03"
    unlabelled: int = 0  # predictions with no label yet
    orphans: int = 0  # labels of no known prediction
    repeated: int = 0  # log lines repeating an earlier (request id, index): left out, the first one is joined

    def __len__(self) -> int:
        """Number of labelled rows."""
        return len(self.y)

    def select(self, mask: np.ndarray) -> Labelled:
        """The rows where ``mask`` is true."""
        arrays = ("X", "y", "score", "shadow_score", "model_version", "shadow_version", "week")
        return Labelled(**{name: getattr(self, name)[mask] for name in arrays})

    def summary(self) -> str:
        """One line: how many rows joined, and what was left out."""
        return (
            f"{len(self)} labelled rows; {self.unlabelled} predictions without a label yet, "
            f"{self.orphans} labels without a prediction, {self.repeated} repeated log lines left out"
        )


def iso_week(moment: datetime) -> str:
    """The ISO week of a time in UTC, as "2026-W03"."""
    year, week, _ = moment.astimezone(timezone.utc).isocalendar()
    return f"{year}-W{week:02d}"


def prediction_record(
    request_id: str,
    index: int,
    time: datetime,
    model_version: str,
    row: dict,
    score: float,
    shadow_version: str | None = None,
    shadow_score: float | None = None,
    client_request_id: str | None = None,
) -> dict:
    """One line of the prediction log, in the service's format."""
    return {
        "request_id": request_id,
        "client_request_id": client_request_id,
        "index": index,
        "time": time.astimezone(timezone.utc).isoformat(),
        "model_version": model_version,
        "row": row,
        "score": score,
        "shadow_version": shadow_version,
        "shadow_score": shadow_score,
    }


def label_record(request_id: str, index: int, label: int, time: datetime) -> dict:
    """One line of a feedback file."""
    return {"request_id": request_id, "index": index, "label": label, "time": time.astimezone(timezone.utc).isoformat()}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """Write records as a new JSON Lines file all at once (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}-", delete=False) as file:
        file.writelines(json.dumps(record) + "\n" for record in records)
    os.replace(file.name, path)
    return path


def _lines(store: Path) -> Iterator[tuple[str, dict]]:
    """Yield (where, record) for every line of a JSON Lines file, or of every *.jsonl file in a folder."""
    files = sorted(store.glob("*.jsonl")) if store.is_dir() else [store] if store.is_file() else []
    for path in files:
        if path.is_symlink():  # its target's text would reach the messages below
            raise FeedbackError(f"{path} is a symbolic link: the store holds JSON Lines files only")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise FeedbackError(f"cannot read {path}: {error}") from None
        lines = text.split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                if number == len(lines):  # a last line without its newline: a write still under way
                    continue
                raise FeedbackError(f"{path}, line {number}: not JSON: {line[:60]!r}") from None
            if not isinstance(record, dict):
                raise FeedbackError(f"{path}, line {number}: expected a JSON object, got {line[:60]!r}")
            yield f"{path}, line {number}", record


def _field(record: dict, key: str, where: str, kind: str, optional: bool = False):
    """The value of ``key``, checked to be a ``kind`` ("text", "index", "probability", "label", "time")."""
    value = record.get(key)
    if value is None and optional:
        return None
    if kind == "text" and isinstance(value, str) and value:
        return value
    if kind == "version" and isinstance(value, str) and VERSION_NAME.fullmatch(value):
        return value
    if kind == "index" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if kind == "label" and value in (0, 1) and not isinstance(value, bool):
        return int(value)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "probability" and numeric and math.isfinite(value) and 0 <= value <= 1:
        return float(value)
    if kind == "time" and isinstance(value, str):
        try:  # Python 3.10 does not read a "Z" suffix
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    wanted = {
        "text": "a non-empty string",
        "version": "a model version name (letters, digits, . _ -)",
        "index": "a whole number >= 0",
        "label": "0 or 1",
        "probability": "a number from 0 to 1",
        "time": "an ISO 8601 time such as 2026-01-05T12:00:00+00:00",
    }[kind]
    return _fail(where, f"{key} must be {wanted}{' or null' if optional else ''}, got {value!r}")


def _fail(where: str, message: str):
    """Raise the one-line error of a bad record."""
    raise FeedbackError(f"{where}: {message}")


def read_predictions(store: Path) -> list[Prediction]:
    """Every record of the prediction log (a folder of *.jsonl files, or one file); missing means none yet."""
    predictions = []
    for where, record in _lines(Path(store)):
        row = record.get("row")
        if not (isinstance(row, dict) and all(type(value) in (int, float, bool) for value in row.values())):
            _fail(where, f"row must be an object of numbers, got {str(row)[:80]}")
        shadow_version = _field(record, "shadow_version", where, "version", optional=True)
        shadow_score = _field(record, "shadow_score", where, "probability", optional=True)
        if (shadow_version is None) != (shadow_score is None):
            _fail(where, "shadow_version and shadow_score must both be set or both be null")
        predictions.append(
            Prediction(
                request_id=_field(record, "request_id", where, "text"),
                index=_field(record, "index", where, "index"),
                time=_field(record, "time", where, "time"),
                model_version=_field(record, "model_version", where, "version"),
                row=row,
                score=_field(record, "score", where, "probability"),
                shadow_version=shadow_version,
                shadow_score=shadow_score,
                source=where,
            )
        )
    return predictions


def read_labels(store: Path) -> list[Label]:
    """Every record of the feedback store (a folder of *.jsonl files, or one file); missing means none yet."""
    return [
        Label(
            request_id=_field(record, "request_id", where, "text"),
            index=_field({"index": 0, **record}, "index", where, "index"),
            label=_field(record, "label", where, "label"),
            time=_field(record, "time", where, "time"),
        )
        for where, record in _lines(Path(store))
    ]


def join(predictions: list[Prediction], labels: list[Label], features: tuple[Feature, ...] = FEATURES) -> Labelled:
    """Match each prediction with its label by (request id, index); the latest label of a row wins.

    The service draws every request id itself, so a key logged twice is a line shipped twice or written by someone
    else: the first logged (the earliest, then in file order) is the row, and a later one never hides it.
    """
    latest: dict[tuple[str, int], Label] = {}
    for label in labels:
        key = (label.request_id, label.index)
        if key not in latest or label.time >= latest[key].time:
            latest[key] = label
    first: dict[tuple[str, int], Prediction] = {}
    for prediction in sorted(predictions, key=lambda p: p.time):  # a stable sort: ties stay in file order
        first.setdefault((prediction.request_id, prediction.index), prediction)
    unique = list(first.values())
    matched = [(p, latest[key]) for key, p in first.items() if key in latest]
    names = [feature.name for feature in features]
    try:
        X = np.array([[p.row[name] for name in names] for p, _ in matched], dtype=float).reshape(-1, len(names))
    except (KeyError, TypeError, ValueError):
        X = np.array([[np.nan]])
    if not np.isfinite(X).all():
        _name_the_bad_row([p for p, _ in matched], names)
    weeks = {moment: iso_week(moment) for moment in {label.time for _, label in matched}}
    return Labelled(
        X=X,
        y=np.array([label.label for _, label in matched], dtype=np.int8),
        score=np.array([p.score for p, _ in matched], dtype=float),
        shadow_score=np.array([np.nan if p.shadow_score is None else p.shadow_score for p, _ in matched], dtype=float),
        model_version=np.array([p.model_version for p, _ in matched], dtype=object),
        shadow_version=np.array([p.shadow_version or "" for p, _ in matched], dtype=object),
        week=np.array([weeks[label.time] for _, label in matched], dtype=object),
        unlabelled=len(unique) - len(matched),
        orphans=len(latest.keys() - first.keys()),
        repeated=len(predictions) - len(unique),
    )


def _name_the_bad_row(predictions: list[Prediction], names: list[str]) -> None:
    """Raise FeedbackError naming the first logged row that lacks a feature or holds something other than a number."""
    for prediction in predictions:
        for name in names:
            value = prediction.row.get(name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                _fail(prediction.source, f"row holds no number for the feature {name}: {value!r}")


def load(predictions: Path, feedback: Path, features: tuple[Feature, ...] = FEATURES) -> Labelled:
    """Read both stores and join them."""
    return join(read_predictions(predictions), read_labels(feedback), features)
