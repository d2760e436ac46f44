"""Monitoring: a model's AUC on later labelled rows against its deploy-time AUC, and drift (PSI)."""

import numpy as np
import pytest
from scipy import stats

from {{ cookiecutter.package_name }} import artifact, monitor
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


def test_no_alert_on_data_like_the_models_own_nor_on_a_week_with_too_few_labels(
    model_dir, production, labelled, tmp_path
):
    write_csv(tmp_path / "labelled.csv", labelled)
    result = offline_report(model_dir, "holdout", tmp_path / "labelled.csv", SETTINGS)
    assert result.alerts == () and result.lines()[-1] == "OK: no retrain needed"
    assert set(result.psi) == {feature.name for feature in artifact.load(model_dir).features}
    assert result.rows == len(labelled.y) and result.p_drop > 0.05
    model, deployed = production
    X, y = labelled.X[:3], np.array([0, 0, 1])
    result = check(deployed, "2026-W02", y, model.probability(X), X, SETTINGS)
    assert (result.estimate, result.p_drop, result.psi, result.alerts) == (None, None, {}, ())


@pytest.mark.parametrize(
    ("deployed_std_error", "below", "alerts"),
    [
        pytest.param(0.005, 4, True, id="four standard errors below alerts, even above the floor"),
        pytest.param(None, 0.5, False, id="half a standard error below is noise"),
    ],
)
def test_a_drop_below_the_deploy_time_auc_alerts_only_when_significant(
    deployed_std_error, below, alerts, production, labelled
):
    model, deployed = production
    live = model.probability(labelled.X)
    estimate = check(deployed, "2026-W02", labelled.y, live, labelled.X, SETTINGS).estimate
    deployed_std_error = deployed_std_error or deployed.std_error
    # the standard error of the difference of two independent estimates: the live one and the deploy-time one
    noise = float(np.hypot(estimate.std_error, deployed_std_error))
    promised_auc = estimate.auc + below * noise
    if noise == 0 or promised_auc > 1 or estimate.auc <= SETTINGS.gate.min_auc:
        pytest.skip(f"live AUC {estimate.auc:.4f}: no deploy-time AUC up to 1 lies {below} standard errors above it")
    promised = Deployed(deployed.version, promised_auc, deployed_std_error, deployed.profile)
    result = check(promised, "2026-W02", labelled.y, live, labelled.X, SETTINGS)
    p_drop = stats.norm.cdf(-below)  # 0.00003 and 0.31
    assert result.p_drop == pytest.approx(p_drop)
    drop = f"AUC {estimate.auc:.4f} is significantly below its deploy-time {promised_auc:.4f} (p = {p_drop:.3f})"
    assert result.alerts == ((drop,) if alerts else ())


def a_number(rng, shift):
    """5,000 values of a normal feature, its mean moved by ``shift``."""
    return rng.normal(loc=shift, size=5_000)


def a_yes_no(rng, shift):
    """5,000 values of a yes-no feature, 70% yes, less ``shift``."""
    return (rng.random(5_000) < 0.7 - shift).astype(float)


@pytest.mark.parametrize(
    ("draw", "shift", "noise", "drift"),
    [(a_number, 1.0, 0.02, 0.5), (a_yes_no, 0.25, 0.01, 0.2)],
    ids=["a number", "a yes-no feature"],
)
def test_population_stability_is_near_zero_without_drift_and_large_with_it(draw, shift, noise, drift):
    rng = np.random.default_rng(0)
    profile = monitor.feature_profile(draw(rng, 0))
    assert sum(profile["shares"]) == pytest.approx(1.0)
    assert monitor.population_stability(profile, draw(rng, 0)) < noise
    assert monitor.population_stability(profile, draw(rng, shift)) > drift
