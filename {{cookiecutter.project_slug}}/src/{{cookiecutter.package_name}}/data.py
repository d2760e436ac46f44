"""Labelled data: a Dataset, CSV input (checked against the feature list) and output, and file hashes."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .features import FEATURES, LABEL, Feature

if TYPE_CHECKING:
    import numpy as np


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
    import numpy as np  # here, not at the top: registry commands read no data and start without numpy

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
    import numpy as np  # as in read_csv

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
