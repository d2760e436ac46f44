"""Labelled data: a Dataset, CSV files checked against the feature list, and the configured source's two files."""

from __future__ import annotations

import contextlib
import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import TABLE, DataSettings, Settings
from .features import FEATURES, LABEL, Feature

Rows = list[tuple[int, list[str]]]  # the rows of a CSV file as text, each with its line number


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


@dataclass(frozen=True)
class DataFiles:
    """A training and a holdout CSV, a short name of where they came from, and the lineage a model records."""

    train: Path
    holdout: Path
    description: str
    lineage: dict


def write_csv(path: Path, data: Dataset, features: tuple[Feature, ...] = FEATURES) -> None:
    """Write a dataset as CSV with a header of the feature names and the label (whole numbers without a point)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    integral = [feature.kind != "float" for feature in features]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*(feature.header for feature in features), LABEL])
        for row, label in zip(data.X.tolist(), data.y.tolist(), strict=True):
            writer.writerow([int(v) if whole else v for v, whole in zip(row, integral, strict=True)] + [int(label)])


def read_table(path: Path) -> tuple[list[str], Rows]:
    """The header (names stripped) and the non-blank rows, each with its line number, of a CSV that has both."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as file:  # -sig: a spreadsheet's byte-order mark
            reader = csv.reader(file)
            header = [name.strip() for name in next(reader, [])]
            rows = [(line, row) for line, row in enumerate(reader, start=2) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read data file {path}: {error}") from None
    if not header:
        raise DataError(f"{path} is empty; expected a header row")
    if not rows:
        raise DataError(f"{path} has a header but no rows")
    return header, rows


def read_csv(path: Path, features: tuple[Feature, ...] = FEATURES) -> Dataset:
    """Read and validate a CSV: every feature column and the label must be present and in range."""
    header, rows = read_table(path)
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
    if not np.isin(values[:, -1], (0, 1)).all():
        raise DataError(f"{path}: column {LABEL} must hold only 0 and 1")
    for column, feature in zip(values[:, :-1].T, features, strict=True):
        low, high = (0, 1) if feature.kind == "bool" else (feature.minimum, feature.maximum)
        if not np.isfinite(column).all():
            raise DataError(f"{path}: column {feature.header} holds NaN or infinite values")
        if low is not None and column.min() < low or high is not None and column.max() > high:
            raise DataError(f"{path}: column {feature.header} must lie in [{low}, {high}]")
        if feature.kind != "float" and not (column == np.round(column)).all():
            raise DataError(f"{path}: column {feature.header} must hold whole numbers")
    return Dataset(values[:, :-1], values[:, -1].astype(np.int8))


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file (data lineage and model integrity)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:  # in blocks: a file of any size costs no more memory
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def prepare(settings: Settings, week: int | None = None, root: Path = Path()) -> DataFiles:
    """Write (or find) the configured source's two CSVs; relative paths in the settings start at ``root``."""
    data = settings.data
    if week is not None and data.source != "synthetic":
        raise DataError(f'a week of data needs source = "synthetic"; this project\'s source is "{data.source}"')
    if data.source == "csv":
        return _split(settings, root)
    if data.source == "csv-pair":
        train, holdout = _existing(root / data.path), _existing(root / data.holdout_path)
        lineage = {"source": "csv-pair", "path": str(data.path), "sha256": sha256_of(train)}
        lineage |= {"holdout_path": str(data.holdout_path), "holdout_sha256": sha256_of(holdout)}
        return DataFiles(train, holdout, f"{data.path} and {data.holdout_path}", lineage)
    try:
        from . import synthetic  # imported here: the own-data guide deletes it
    except ModuleNotFoundError:
        hint = f"set source in [tool.{TABLE}.data] of pyproject.toml"
        raise DataError(f'source = "synthetic" needs synthetic.py, which this project no longer has: {hint}') from None
    week, sizes = week or 0, (settings.train_rows, settings.holdout_rows)
    train, holdout = synthetic.write_week(root / settings.data_dir, week, settings.seed, *sizes)
    lineage = {"source": "synthetic", "week": week, "seed": settings.seed}
    return DataFiles(train, holdout, f"synthetic week {week}", lineage)


def _existing(path: Path) -> Path:
    """The path of a data file that exists, or a DataError naming it."""
    if not path.is_file():
        raise DataError(f"data file {path} does not exist (see [tool.{TABLE}.data] in pyproject.toml)")
    return path


def _split(settings: Settings, root: Path) -> DataFiles:
    """Split one CSV into training and holdout files under ``data_dir/split``, the same way every time."""
    data, source = settings.data, _existing(root / settings.data.path)
    header, rows = read_table(source)
    if LABEL not in header:
        raise DataError(f"{source} has no label column {LABEL} (LABEL in features.py)")
    labels = _column(header, rows, LABEL)
    for (line, _), label in zip(rows, labels, strict=True):
        if label not in ("0", "1", "0.0", "1.0"):
            raise DataError(f"{source}, line {line}: {LABEL} must be 0 or 1, got {label!r}")
    if data.split_column:
        held = _latest(source, header, rows, data)
    else:
        held = _stratified(source, rows, np.array(labels, dtype=float), data.holdout_fraction)
    folder = root / settings.data_dir / "split"
    folder.mkdir(parents=True, exist_ok=True)
    for name, keep in (("train.csv", ~held), ("holdout.csv", held)):
        with (folder / name).open("w", newline="") as file:
            chosen = (row for (_, row), chosen in zip(rows, keep, strict=True) if chosen)
            csv.writer(file, lineterminator="\n").writerows([header, *chosen])
    lineage = {"source": "csv", "path": str(data.path), "sha256": sha256_of(source)}
    lineage |= {"holdout_fraction": data.holdout_fraction, "split_column": data.split_column or None}
    return DataFiles(folder / "train.csv", folder / "holdout.csv", str(data.path), lineage)


def _column(header: list[str], rows: Rows, name: str) -> list[str]:
    """A column's values, stripped ("" where a row is too short)."""
    index = header.index(name)
    return [row[index].strip() if index < len(row) else "" for _, row in rows]


def _stratified(path: Path, rows: Rows, labels: np.ndarray, fraction: float) -> np.ndarray:
    """Hold out ``fraction`` of each class (one row or more each side): the rows whose text hashes lowest."""
    # the same rows whatever the seed or the row order, so a retrain is gated on the rows production was gated on
    digests = [hashlib.sha256("\x1f".join(row).encode()).digest() for _, row in rows]
    held = np.zeros(len(rows), dtype=bool)
    for value in (0, 1):
        members = sorted(np.flatnonzero(labels == value), key=digests.__getitem__)
        if len(members) < 2:
            raise DataError(f"{path}: {LABEL} = {value} on {len(members)} row(s); a split needs 2 or more of each")
        held[members[: min(max(round(fraction * len(members)), 1), len(members) - 1)]] = True
    return held


def _latest(path: Path, header: list[str], rows: Rows, data: DataSettings) -> np.ndarray:
    """Hold out the rows with the latest ``split_column`` values: numbers, or text such as ISO dates (2024-05-31)."""
    if data.split_column not in header:
        raise DataError(f"{path} has no column {data.split_column} (split_column in [tool.{TABLE}.data])")
    keys = np.array(_column(header, rows, data.split_column))
    for (line, _), key in zip(rows, keys, strict=True):
        if not key:
            raise DataError(f"{path}, line {line}: {data.split_column} is empty; the time split needs it on every row")
    with contextlib.suppress(ValueError):  # not all numbers: compare as text, which orders ISO dates correctly
        keys = keys.astype(float)
    cutoff = np.sort(keys)[min(int(len(keys) * (1 - data.holdout_fraction)), len(keys) - 1)]
    held = keys >= cutoff  # one row or more: the cutoff is a row's value
    if held.all():
        raise DataError(f"{path}: the split leaves no rows to train on")
    return held
