"""Monitoring: a model's AUC on later labelled rows against its deploy-time AUC, and drift."""

import numpy as np
import pytest

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.config import GateSettings, Settings
from {{ cookiecutter.package_name }}.data import write_csv
from {{ cookiecutter.package_name }}.monitor import Deployed, check, offline_report

SETTINGS = Settings(max_psi=0.2, gate=GateSettings(min_auc=0.8, max_auc_drop=0.01, confidence=0.95))


@pytest.fixture(scope="module")
def production(model_dir):
    """The session model and what it promised at deploy time."""
    return artifact.load(model_dir), Deployed.of(model_dir)


@pytest.fixture(scope="module")
def labelled(draw_training):
    """4,000 labelled rows like those the model was trained on, drawn from its training data."""
    return draw_training(4_000)  # enough rows, however small the table


def test_the_model_raises_no_alert_on_data_like_its_holdout(model_dir, labelled, tmp_path):
    write_csv(tmp_path / "labelled.csv", labelled)
    report = offline_report(model_dir, "holdout", tmp_path / "labelled.csv", SETTINGS)
    assert report.alerts == []
    assert report.lines()[-1] == "OK: no retrain needed"
    (result,) = report.checks
    assert set(result.psi) == {feature.name for feature in artifact.load(model_dir).features}
    assert result.rows == len(labelled.y) and result.p_drop > 0.05


def spread(live: float, deployed: float) -> float:
    """The standard error of the difference between a live and a deploy-time AUC (independent estimates)."""
    return (live**2 + deployed**2) ** 0.5


def test_a_significant_drop_alerts_even_above_the_floor(production, labelled):
    model, deployed = production
    live = model.probability(labelled.X)
    estimate = check(deployed, "2026-W02", labelled.y, live, labelled.X, SETTINGS).estimate
    promised_auc = estimate.auc + 4 * spread(estimate.std_error, 0.005)  # four standard errors above the live AUC
    if promised_auc > 1 or estimate.auc <= SETTINGS.gate.min_auc:
        pytest.skip(f"live AUC {estimate.auc:.4f}: no deploy-time AUC up to 1 lies significantly above it")
    promised = Deployed(deployed.version, promised_auc, 0.005, deployed.profile)
    result = check(promised, "2026-W02", labelled.y, live, labelled.X, SETTINGS)
    assert [alert.split(" (p = ")[0] for alert in result.alerts] == [
        f"AUC {result.estimate.auc:.4f} is significantly below its deploy-time {promised_auc:.4f}"
    ]


def test_a_drop_within_the_noise_of_both_estimates_does_not_alert(production, labelled):
    model, deployed = production
    live = model.probability(labelled.X)
    estimate = check(deployed, "2026-W02", labelled.y, live, labelled.X, SETTINGS).estimate
    noise = spread(estimate.std_error, deployed.std_error)
    if noise == 0 or estimate.auc + noise / 2 > 1:
        pytest.skip(f"live AUC {estimate.auc:.4f} with no spread: no drop within the noise to test")
    # half a standard error of the difference below the deploy-time AUC: p(drop) = 0.31, not significant
    promised = Deployed(deployed.version, estimate.auc + noise / 2, deployed.std_error, deployed.profile)
    result = check(promised, "2026-W02", labelled.y, live, labelled.X, SETTINGS)
    assert result.alerts == () and 0.05 < result.p_drop < 0.5


def test_a_week_with_too_few_labels_has_no_estimate_and_no_alert(production, labelled):
    model, deployed = production
    X, y = labelled.X[:3], np.array([0, 0, 1])
    result = check(deployed, "2026-W02", y, model.probability(X), X, SETTINGS)
    assert (result.estimate, result.p_drop, result.psi, result.alerts) == (None, None, {}, ())
