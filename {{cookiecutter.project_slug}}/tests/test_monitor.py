"""Monitoring: the week-0 model raises an alert on drifted week-4 data and stays quiet on week 0."""

import pytest

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.data import synthetic_transactions
from {{ cookiecutter.package_name }}.monitor import monitor


@pytest.fixture(scope="module")
def production(model_dir):
    """The session model and the feature profile of its training data."""
    return artifact.load(model_dir), artifact.read_json(model_dir / artifact.METRICS_FILE)["train_profile"]


def test_the_week_0_model_raises_an_alert_on_week_4_data(production):
    model, profile = production
    report = monitor(model, profile, synthetic_transactions(4_000, week=4, seed=20_000), min_auc=0.85, max_psi=0.2)
    # measured: AUC 0.816, card_present PSI 0.26 (shoppers moved online)
    assert any(alert.startswith("card_present drifted") for alert in report.alerts)
    assert any("below the floor 0.85" in alert for alert in report.alerts)
    assert [line for line in report.lines() if line.startswith("ALERT")] == [f"ALERT: {a}" for a in report.alerts]


def test_the_week_0_model_raises_no_alert_on_new_week_0_data(production):
    model, profile = production
    report = monitor(model, profile, synthetic_transactions(4_000, week=0, seed=20_000), min_auc=0.85, max_psi=0.2)
    assert report.alerts == []
    assert report.lines()[-1] == "OK: no retrain needed"
    assert set(report.psi) == {feature.name for feature in model.features}
    assert report.estimate.positives + report.estimate.negatives == 4_000
