"""Monitoring: a feature whose population moved raises its drift alert; an AUC under the floor raises one too."""

import numpy as np
import pytest

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.data import Dataset, read_csv
from {{ cookiecutter.package_name }}.features import FEATURES
from {{ cookiecutter.package_name }}.monitor import monitor


@pytest.fixture(scope="module")
def production(model_dir):
    """The session model and the feature profile of its training data."""
    return artifact.load(model_dir), artifact.read_json(model_dir / artifact.METRICS_FILE)["train_profile"]


@pytest.fixture(scope="module")
def holdout(data_files) -> Dataset:
    """The configured source's holdout."""
    return read_csv(data_files[1])


@pytest.mark.parametrize("column", range(len(FEATURES)), ids=[feature.name for feature in FEATURES])
def test_a_feature_shifted_by_its_whole_range_raises_its_drift_alert(production, holdout, configured, column):
    model, profile = production
    values = holdout.X[:, column]
    assert values.max() > values.min(), f"{FEATURES[column].name} is constant in the holdout: nothing to shift"
    X = holdout.X.copy()
    X[:, column] += values.max() - values.min()  # every row now lies beyond what training saw
    report = monitor(model, profile, Dataset(X, holdout.y), min_auc=0.5, max_psi=configured.max_psi)
    assert report.psi[FEATURES[column].name] > configured.max_psi
    assert any(alert.startswith(f"{FEATURES[column].name} drifted") for alert in report.alerts)
    assert [line for line in report.lines() if line.startswith("ALERT")] == [f"ALERT: {a}" for a in report.alerts]


def test_an_auc_below_the_floor_raises_an_alert_and_the_report_counts_every_row(production, holdout):
    model, profile = production
    floor = monitor(model, profile, holdout, min_auc=0.5, max_psi=np.inf).estimate.auc + 0.001
    report = monitor(model, profile, holdout, min_auc=floor, max_psi=np.inf)
    assert any(f"below the floor {floor}" in alert for alert in report.alerts)
    assert report.estimate.positives + report.estimate.negatives == len(holdout.y)
    assert set(report.psi) == {feature.name for feature in model.features}


def test_the_holdout_itself_raises_no_alert_with_lenient_thresholds(production, holdout):
    model, profile = production
    report = monitor(model, profile, holdout, min_auc=0.5, max_psi=np.inf)
    assert report.alerts == []
    assert report.lines()[-1] == "OK: no retrain needed"
