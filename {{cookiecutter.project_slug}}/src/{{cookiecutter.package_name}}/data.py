"""Labelled data: a Dataset, CSV input (checked against the feature list) and output, and the configured source.

The source ([tool.<package>.data] in pyproject.toml) gives one training CSV and one holdout CSV:
- "synthetic": the example's generated week (``week`` picks it);
- "csv": one labelled file, split in two by a fixed stratified rule, or by ``split_column`` for a time split
  (the rows with the latest values are held out). The stratified rule holds out, in each class, the rows whose
  text has the lowest sha256: the same rows whatever the model's seed or the order of the rows, so a retrain
  is gated on the rows production was gated on, none of which either model trained on;
- "csv-pair": a training file and a holdout file, used as they are.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import TABLE, DataSettings, Settings
from .features import FEATURES, LABEL, Feature


class DataError(ValueError):
    """A data file is missing, malformed or outside the declared feature ranges."""


@dataclass(frozen=True)
class Dataset:
    """Feature matrix (columns in feature order) and 0/1 labels."""

    X: np.ndarray
    y: np.ndarray

    @property
    def positives(self) -> int:
        """Number of rows labelled 1."""
        return int(self.y.sum())

    @property
    def negatives(self) -> int:
        """Number of rows labelled 0."""
        return int(len(self.y) - self.y.sum())


def write_csv(path: Path, data: Dataset, features: tuple[Feature, ...] = FEATURES) -> None:
    """Write a dataset as CSV with a header of the feature names and the label."""
    path.parent.mkdir(parents=True, exist_ok=True)
    integral = [feature.kind != "float" for feature in features]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*(feature.header for feature in features), LABEL])
        for row, label in zip(data.X.tolist(), data.y.tolist(), strict=True):
            writer.writerow([int(v) if whole else v for v, whole in zip(row, integral, strict=True)] + [int(label)])


def read_csv(path: Path, features: tuple[Feature, ...] = FEATURES) -> Dataset:
    """Read and validate a CSV: every feature column and the label must be present and in range."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as file:  # -sig: a spreadsheet's byte-order mark
            reader = csv.reader(file)
            header = next(reader, None)
            rows = [(line, row) for line, row in enumerate(reader, start=2) if row]  # skip blank lines
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read data file {path}: {error}") from None
    if header is None:
        raise DataError(f"{path} is empty; expected a header row")
    wanted = [*(feature.header for feature in features), LABEL]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise DataError(f"{path} is missing column(s) {', '.join(missing)}")
    columns = [header.index(name) for name in wanted]
    values = np.empty((len(rows), len(columns)))
    for index, (line, row) in enumerate(rows):
        try:
            values[index] = [float(row[i]) for i in columns]
        except (ValueError, IndexError):
            raise DataError(f"{path}, line {line}: expected {len(header)} numeric values") from None
    if not len(rows):
        raise DataError(f"{path} has a header but no rows")
    if not np.isin(values[:, -1], (0, 1)).all():
        raise DataError(f"{path}: column {LABEL} must hold only 0 and 1")
    data = Dataset(values[:, :-1], values[:, -1].astype(np.int8))
    _check(path, data, features)
    return data


def _check(path: Path, data: Dataset, features: tuple[Feature, ...]) -> None:
    """Raise DataError naming the first column whose values break its declared range."""
    for column, feature in zip(data.X.T, features, strict=True):
        low, high = (0, 1) if feature.kind == "bool" else (feature.minimum, feature.maximum)
        if not np.isfinite(column).all():
            raise DataError(f"{path}: column {feature.header} holds NaN or infinite values")
        if low is not None and column.min() < low or high is not None and column.max() > high:
            raise DataError(f"{path}: column {feature.header} must lie in [{low}, {high}]")
        if feature.kind != "float" and not (column == np.round(column)).all():
            raise DataError(f"{path}: column {feature.header} must hold whole numbers")


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file (data lineage and model integrity)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class DataFiles:
    """A training and a holdout CSV, a short name of where they came from, and the lineage a model records."""

    train: Path
    holdout: Path
    description: str
    lineage: dict


def prepare(settings: Settings, week: int | None = None, root: Path = Path()) -> DataFiles:
    """Write (or find) the configured source's two CSVs; relative paths in the settings start at ``root``."""
    data = settings.data
    if week is not None and data.source != "synthetic":
        raise DataError(f'a week of data needs source = "synthetic"; this project\'s source is "{data.source}"')
    if data.source == "synthetic":
        return _synthetic(settings, week or 0, root)
    if data.source == "csv-pair":
        train, holdout = _existing(root / data.path), _existing(root / data.holdout_path)
        lineage = {"source": "csv-pair", "path": str(data.path), "sha256": sha256_of(train)}
        lineage |= {"holdout_path": str(data.holdout_path), "holdout_sha256": sha256_of(holdout)}
        return DataFiles(train, holdout, f"{data.path} and {data.holdout_path}", lineage)
    return _split(settings, root)


def _synthetic(settings: Settings, week: int, root: Path) -> DataFiles:
    """Write a week of the synthetic example."""
    try:
        from . import synthetic
    except ModuleNotFoundError:  # the example was deleted, as the own-data guide says
        raise DataError(
            f'source = "synthetic" needs synthetic.py, which this project no longer has: '
            f"set source in [tool.{TABLE}.data] of pyproject.toml"
        ) from None
    train, holdout = synthetic.write_week(
        root / settings.data_dir, week, settings.seed, settings.train_rows, settings.holdout_rows
    )
    lineage = {"source": "synthetic", "week": week, "seed": settings.seed}
    return DataFiles(train, holdout, f"synthetic week {week}", lineage)


def _existing(path: Path) -> Path:
    """The path of a data file that exists, or a DataError naming it."""
    if not path.is_file():
        raise DataError(f"data file {path} does not exist (see [tool.{TABLE}.data] in pyproject.toml)")
    return path


def _split(settings: Settings, root: Path) -> DataFiles:
    """Split one CSV into training and holdout files under ``data_dir/split``, the same way every time."""
    data = settings.data
    source = _existing(root / data.path)
    header, rows = _read_rows(source)
    labels = np.array([_label(source, line, row, header.index(LABEL)) for line, row in rows], dtype=np.int8)
    if data.split_column:
        held = _latest(source, header, rows, data)
    else:
        held = _stratified(source, rows, labels, data.holdout_fraction)
    if held.all() or not held.any():
        raise DataError(f"{source}: the split leaves no rows to {'train on' if held.all() else 'hold out'}")
    folder = root / settings.data_dir / "split"
    folder.mkdir(parents=True, exist_ok=True)
    for name, keep in (("train.csv", ~held), ("holdout.csv", held)):
        with (folder / name).open("w", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(row for (_, row), chosen in zip(rows, keep, strict=True) if chosen)
    lineage = {"source": "csv", "path": str(data.path), "sha256": sha256_of(source)}
    lineage |= {"holdout_fraction": data.holdout_fraction, "split_column": data.split_column or None}
    return DataFiles(folder / "train.csv", folder / "holdout.csv", str(data.path), lineage)


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank rows (with their line numbers) of a CSV that has the label column."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            rows = [(line, row) for line, row in enumerate(reader, start=2) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read data file {path}: {error}") from None
    if not header or LABEL not in header:
        raise DataError(f"{path} has no label column {LABEL} (LABEL in features.py)")
    if not rows:
        raise DataError(f"{path} has a header but no rows")
    return header, rows


def _label(path: Path, line: int, row: list[str], column: int) -> int:
    """A row's 0/1 label, or a DataError naming the line."""
    value = row[column].strip() if column < len(row) else ""
    if value not in ("0", "1", "0.0", "1.0"):
        raise DataError(f"{path}, line {line}: {LABEL} must be 0 or 1, got {value!r}")
    return int(float(value))


def _stratified(path: Path, rows: list[tuple[int, list[str]]], labels: np.ndarray, fraction: float) -> np.ndarray:
    """Hold out ``fraction`` of each class (one row or more on each side): the rows whose text hashes lowest."""
    digests = [hashlib.sha256("\x1f".join(row).encode()).digest()[:8] for _, row in rows]
    rank = np.array([int.from_bytes(digest, "big") for digest in digests], dtype=np.uint64)
    held = np.zeros(len(labels), dtype=bool)
    for value in (0, 1):
        members = np.flatnonzero(labels == value)
        if len(members) < 2:
            raise DataError(f"{path}: {LABEL} = {value} on {len(members)} row(s); a split needs 2 or more of each")
        count = min(max(round(fraction * len(members)), 1), len(members) - 1)
        held[members[np.argsort(rank[members], kind="stable")[:count]]] = True
    return held


def _latest(path: Path, header: list[str], rows: list[tuple[int, list[str]]], data: DataSettings) -> np.ndarray:
    """Hold out the rows with the latest ``split_column`` values: numbers, or text such as ISO dates (2024-05-31)."""
    if data.split_column not in header:
        raise DataError(f"{path} has no column {data.split_column} (split_column in [tool.{TABLE}.data])")
    column = header.index(data.split_column)
    values = [row[column].strip() if column < len(row) else "" for _, row in rows]
    blank = next((line for (line, _), value in zip(rows, values, strict=True) if not value), None)
    if blank is not None:
        raise DataError(f"{path}, line {blank}: {data.split_column} is empty; the time split needs it on every row")
    try:
        keys: list = [float(value) for value in values]
    except ValueError:  # not all numbers: compare as text, which orders ISO dates and times correctly
        keys = values
    cutoff = sorted(keys)[min(int(len(keys) * (1 - data.holdout_fraction)), len(keys) - 1)]
    return np.array([key >= cutoff for key in keys])
