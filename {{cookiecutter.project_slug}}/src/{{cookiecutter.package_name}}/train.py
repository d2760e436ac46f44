"""Fit the model: a scikit-learn Pipeline, deterministic for a seed, saved as a model folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from . import artifact
from .data import Dataset, read_csv, sha256_of
from .features import FEATURES, Feature
from .gate import auc_estimate
from .monitor import feature_profile


# ----------------------------------------------------------------------------
# EDIT HERE: the estimator. Any scikit-learn classifier with predict_proba works;
# model files may then hold what it holds once fitted (artifact.py derives the allow-list).
# ----------------------------------------------------------------------------
def build_model(seed: int = 0) -> Pipeline:
    """Return the untrained model: scaling, then logistic regression."""
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(max_iter=1_000, random_state=seed)),
        ]
    )


def fit(data: Dataset, seed: int = 0) -> Pipeline:
    """Fit the model on a dataset."""
    return build_model(seed).fit(data.X, data.y)


def train(
    train_csv: Path,
    holdout_csv: Path,
    out_dir: Path,
    seed: int = 0,
    features: tuple[Feature, ...] = FEATURES,
    source: dict | None = None,
) -> tuple[Path, dict]:
    """Train on one CSV, score on a holdout CSV, save the model folder; ``source`` is the data's lineage."""
    data, holdout = read_csv(train_csv, features), read_csv(holdout_csv, features)
    model = fit(data, seed)
    metrics = {
        "holdout": auc_estimate(holdout.y, model.predict_proba(holdout.X)[:, 1]).to_dict(),
        "train_profile": {f.name: feature_profile(column) for f, column in zip(features, data.X.T, strict=True)},
    }
    metadata = {
        "train_data": {"path": str(train_csv), "sha256": sha256_of(train_csv), "rows": len(data.y)},
        "holdout_data": {"path": str(holdout_csv), "sha256": sha256_of(holdout_csv), "rows": len(holdout.y)},
        "data_source": source or {"source": "files"},
        "parameters": {"seed": seed, **{k: repr(v) for k, v in model.get_params(deep=True).items() if "__" in k}},
        "features": [feature.to_dict() for feature in features],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=".incoming-", dir=out_dir))
    saved = artifact.save(model, incoming, metadata, metrics)
    return incoming.rename(out_dir / saved["version"]), saved
