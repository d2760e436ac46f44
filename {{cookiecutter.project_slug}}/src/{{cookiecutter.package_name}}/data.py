"""Card transactions: a deterministic synthetic generator with a drift knob, and CSV input/output."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import FEATURES, LABEL, Feature, feature_names


class DataError(ValueError):
    """A data file is missing, malformed or outside the declared feature ranges."""


@dataclass(frozen=True)
class Dataset:
    """Feature matrix (columns in feature order) and 0/1 labels."""

    X: np.ndarray
    y: np.ndarray

    @property
    def positives(self) -> int:
        """Number of fraudulent rows."""
        return int(self.y.sum())

    @property
    def negatives(self) -> int:
        """Number of legitimate rows."""
        return int(len(self.y) - self.y.sum())


SYNTHETIC_COLUMNS = (
    "amount",
    "hour",
    "merchant_risk",
    "distance_from_home_km",
    "card_present",
    "transactions_last_24h",
)


def synthetic_transactions(n: int, week: int = 0, seed: int = 0, fraud_rate: float = 0.03) -> Dataset:
    """Generate ``n`` transactions of a given week; fraudsters shift tactics as weeks pass.

    Week 0 fraud is mostly "big spend far from home"; from week 1 on, a growing
    share is "card testing": small amounts, near home, many transactions a day.
    Legitimate shoppers also drift online (fewer card-present purchases).
    """
    if feature_names() != list(SYNTHETIC_COLUMNS):
        raise DataError("synthetic data only covers the default features; train on your own CSV with --data")
    if n < 1 or week < 0:
        raise DataError(f"need n >= 1 and week >= 0, got n={n}, week={week}")
    rng = np.random.default_rng([seed, week])
    fraud = rng.random(n) < fraud_rate
    card_testing = fraud & (rng.random(n) < min(week, 4) / 4 * 0.8)
    big_spend = fraud & ~card_testing
    legit = ~fraud

    amount = np.select(
        [legit, big_spend], [rng.lognormal(3.5, 1.0, n), rng.lognormal(4.3, 1.0, n)], rng.lognormal(2.8, 0.8, n)
    )
    daytime = np.clip(np.round(rng.normal(14, 4, n)), 0, 23)
    hour = np.where(big_spend & (rng.random(n) < 0.3), rng.integers(0, 6, n), daytime)
    merchant_risk = np.where(legit, rng.beta(2, 8, n), rng.beta(3, 6, n))
    distance = np.where(big_spend, rng.exponential(50, n), rng.exponential(15, n))
    in_store_share = 0.7 - 0.25 * min(week, 4) / 4
    card_present = rng.random(n) < np.select([legit, big_spend], [in_store_share, 0.45], 0.35)
    transactions = np.select([legit, big_spend], [rng.poisson(3, n), rng.poisson(4, n)], rng.poisson(7, n))

    X = np.column_stack(
        [
            np.minimum(amount, 100_000).round(2),
            hour,
            merchant_risk.round(3),
            np.minimum(distance, 20_000).round(1),
            card_present,
            np.minimum(transactions, 1_000),
        ]
    ).astype(float)
    return Dataset(X, fraud.astype(np.int8))


def write_csv(path: Path, data: Dataset, features: tuple[Feature, ...] = FEATURES) -> None:
    """Write a dataset as CSV with a header of the feature names and the label."""
    path.parent.mkdir(parents=True, exist_ok=True)
    integral = [feature.kind != "float" for feature in features]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*feature_names(features), LABEL])
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
    missing = [name for name in [*feature_names(features), LABEL] if name not in header]
    if missing:
        raise DataError(f"{path} is missing column(s) {', '.join(missing)}")
    columns = [header.index(name) for name in [*feature_names(features), LABEL]]
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
            raise DataError(f"{path}: column {feature.name} holds NaN or infinite values")
        if low is not None and column.min() < low or high is not None and column.max() > high:
            raise DataError(f"{path}: column {feature.name} must lie in [{low}, {high}]")
        if feature.kind != "float" and not (column == np.round(column)).all():
            raise DataError(f"{path}: column {feature.name} must hold whole numbers")


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file (data lineage and model integrity)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
