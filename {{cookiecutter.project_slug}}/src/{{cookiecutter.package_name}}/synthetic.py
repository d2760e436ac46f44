"""The example's synthetic card transactions, whose fraud drifts weekly; delete it and its tests for your own data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import DataError, Dataset, write_csv
from .features import feature_names

SYNTHETIC_COLUMNS = "amount", "hour", "merchant_risk", "distance_from_home_km", "card_present", "transactions_last_24h"
HOLDOUT_SEED_OFFSET = 10_000  # a week's holdout comes from its own seed


def synthetic_transactions(n: int, week: int = 0, seed: int = 0, fraud_rate: float = 0.03) -> Dataset:
    """Generate ``n`` transactions of a week: week 0 fraud is big spends far from home, then card testing grows."""
    if feature_names() != list(SYNTHETIC_COLUMNS):
        raise DataError(
            "the synthetic example only has its own columns, not those of features.py: "
            'set source = "csv" in [tool.{{ cookiecutter.package_name }}.data] of pyproject.toml'
        )
    if n < 1 or week < 0:
        raise DataError(f"need n >= 1 and week >= 0, got n={n}, week={week}")
    rng = np.random.default_rng([seed, week])
    fraud = rng.random(n) < fraud_rate
    card_testing = fraud & (rng.random(n) < min(week, 4) / 4 * 0.8)  # small amounts, near home, many a day
    big_spend = fraud & ~card_testing
    legit = ~fraud

    amount = np.select(
        [legit, big_spend], [rng.lognormal(3.5, 1.0, n), rng.lognormal(4.3, 1.0, n)], rng.lognormal(2.8, 0.8, n)
    )
    daytime = np.clip(np.round(rng.normal(14, 4, n)), 0, 23)
    hour = np.where(big_spend & (rng.random(n) < 0.3), rng.integers(0, 6, n), daytime)
    merchant_risk = np.where(legit, rng.beta(2, 8, n), rng.beta(3, 6, n))
    distance = np.where(big_spend, rng.exponential(50, n), rng.exponential(15, n))
    in_store_share = 0.7 - 0.25 * min(week, 4) / 4  # legitimate shoppers drift online too
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


def week_files(data_dir: Path, week: int) -> tuple[Path, Path]:
    """Where a week's training and holdout CSVs live."""
    folder = Path(data_dir) / f"week-{week:02d}"
    return folder / "train.csv", folder / "holdout.csv"


def write_week(data_dir: Path, week: int, seed: int, train_rows: int, holdout_rows: int) -> tuple[Path, Path]:
    """Write a week's synthetic training and holdout CSVs (the holdout from its own seed); return their paths."""
    train_csv, holdout_csv = week_files(data_dir, week)
    write_csv(train_csv, synthetic_transactions(train_rows, week, seed))
    write_csv(holdout_csv, synthetic_transactions(holdout_rows, week, seed + HOLDOUT_SEED_OFFSET))
    return train_csv, holdout_csv
