"""Monitoring: live AUC per version and week against the deploy-time AUC, drift, and which alerts advise a retrain."""

import json

import numpy as np
import pytest

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.config import GateSettings, Settings
from {{ cookiecutter.package_name }}.data import read_csv, synthetic_transactions, write_csv
from {{ cookiecutter.package_name }}.evaluate import auc_estimate, feature_profile
from {{ cookiecutter.package_name }}.features import FEATURES
from {{ cookiecutter.package_name }}.feedback import iso_week, load
from {{ cookiecutter.package_name }}.monitor import Deployed, check, live_report, offline_report, write_outputs
from {{ cookiecutter.package_name }}.pipeline import write_week
from {{ cookiecutter.package_name }}.simulate import LIVE_SEED_OFFSET, label_time
from {{ cookiecutter.package_name }}.train import build_model

SETTINGS = Settings(max_psi=0.2, gate=GateSettings(min_auc=0.8, max_auc_drop=0.01, confidence=0.95))


@pytest.fixture(scope="module")
def production(model_dir):
    """The session model and what it promised at deploy time."""
    return artifact.load(model_dir), Deployed.of(model_dir)


@pytest.fixture(scope="module")
def week0_live():
    """New labelled week-0 traffic, like the data the model was trained on."""
    return synthetic_transactions(4_000, week=0, seed=20_000)


def test_the_week_0_model_alerts_on_week_4_data_for_drift_and_a_significant_drop(model_dir, tmp_path):
    write_csv(tmp_path / "week4.csv", synthetic_transactions(4_000, week=4, seed=20_000))
    report = offline_report(model_dir, "week 4", tmp_path / "week4.csv", SETTINGS)
    # measured: AUC 0.816 against 0.89 at deploy time; card_present PSI 0.26 (shoppers moved online)
    assert any(alert.startswith("card_present drifted") for alert in report.alerts)
    assert any("is significantly below its deploy-time" in alert for alert in report.alerts)
    assert all(alert.endswith("(week 4)") for alert in report.alerts)
    assert [line for line in report.lines() if line.startswith("ALERT")] == [f"ALERT: {a}" for a in report.alerts]


def test_the_week_0_model_raises_no_alert_on_new_week_0_data(model_dir, tmp_path, week0_live):
    write_csv(tmp_path / "week0.csv", week0_live)
    report = offline_report(model_dir, "week 0", tmp_path / "week0.csv", SETTINGS)
    assert report.alerts == []
    assert report.lines()[-1] == "OK: no retrain needed"
    (result,) = report.checks
    assert set(result.psi) == {feature.name for feature in artifact.load(model_dir).features}
    assert result.rows == 4_000 and result.p_drop > 0.05


def test_a_significant_drop_alerts_even_above_the_floor(production, week0_live):
    model, deployed = production
    live = model.probability(week0_live.X)
    promised = Deployed(deployed.version, 0.97, 0.005, deployed.profile)
    result = check(promised, "2026-W02", week0_live.y, live, week0_live.X, SETTINGS)
    assert result.estimate.auc > SETTINGS.gate.min_auc
    assert [alert.split(" (p = ")[0] for alert in result.alerts] == [
        f"AUC {result.estimate.auc:.4f} is significantly below its deploy-time 0.9700"
    ]


def test_a_drop_within_the_noise_of_both_estimates_does_not_alert(production, week0_live):
    model, deployed = production
    live = model.probability(week0_live.X)
    auc = check(deployed, "2026-W02", week0_live.y, live, week0_live.X, SETTINGS).estimate.auc
    promised = Deployed(deployed.version, auc + 0.01, deployed.std_error, deployed.profile)
    result = check(promised, "2026-W02", week0_live.y, live, week0_live.X, SETTINGS)
    assert result.alerts == () and 0.05 < result.p_drop < 0.5


def test_a_week_with_too_few_labels_has_no_estimate_and_no_alert(production, week0_live):
    model, deployed = production
    X, y = week0_live.X[:3], np.array([0, 0, 1])
    result = check(deployed, "2026-W02", y, model.probability(X), X, SETTINGS)
    assert (result.estimate, result.p_drop, result.psi, result.alerts) == (None, None, {}, ())


def test_only_the_production_models_alerts_advise_a_retrain(registry, own_model_dir, write_live, week0_live):
    production = registry.current("production")
    other = registry.register(own_model_dir)
    y, rng = week0_live.y, np.random.default_rng(0)
    write_live(other, y, rng.random(len(y)), X=week0_live.X)  # a chance-level model, not in production
    write_live("unknown-version", y, rng.random(len(y)), X=week0_live.X)
    stores = write_live(production, y, y * 0.5 + 0.25, X=week0_live.X)
    report = live_report(registry, load(*stores), SETTINGS)
    assert [(c.version, c.period, bool(c.alerts)) for c in report.checks] == [
        (production, "2026-W02", False),
        (other, "2026-W02", True),
    ]
    assert report.alerts == [] and report.lines()[-1] == "OK: no retrain needed"
    assert any(note.startswith(f"left out {len(y)} rows of unknown-version") for note in report.notes)

    write_live(production, y, rng.random(len(y)), X=week0_live.X, labelled=label_time(3))
    report = live_report(registry, load(*stores), SETTINGS)
    assert report.alerts and all(alert.endswith("(2026-W03)") for alert in report.alerts)


def test_the_report_is_written_as_json_markdown_and_a_png(registry, write_live, week0_live, tmp_path):
    production = registry.current("production")
    y = week0_live.y
    report = live_report(registry, load(*write_live(production, y, y * 0.5 + 0.25, X=week0_live.X)), SETTINGS)
    markdown = write_outputs(report, tmp_path / "out").read_text()
    assert markdown.startswith("## Monitor: no retrain needed")
    assert f"| {production} | 2026-W02 | {len(y)} |" in markdown and "![Live AUC by week](trend.png)" in markdown
    assert (tmp_path / "out" / "trend.png").read_bytes().startswith(b"\x89PNG")
    written = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert written["retrain_advised"] is False and written["checks"][0]["estimate"]["auc"] == 1.0


def test_on_the_default_data_monitor_flags_the_decay_before_auc_falls_3_points(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")  # the default sizes, seed and thresholds
    train_data, holdout = (read_csv(path) for path in write_week(settings, 0))
    # the default estimator fitted directly, as fit() does: this checks the monitor's rule, not the training code
    model = build_model(settings.seed).fit(train_data.X, train_data.y)
    promised = auc_estimate(holdout.y, model.predict_proba(holdout.X)[:, 1])
    profile = {f.name: feature_profile(column) for f, column in zip(FEATURES, train_data.X.T, strict=True)}
    deployed = Deployed("default", promised.auc, promised.std_error, profile)
    checks = []
    for week in range(1, 7):  # what `simulate --week N` sends, then labels in ISO week N
        live = synthetic_transactions(20_000, week, settings.seed + LIVE_SEED_OFFSET)
        period = iso_week(label_time(week))
        checks.append(check(deployed, period, live.y, model.predict_proba(live.X)[:, 1], live.X, settings))
    flagged = [week for week, c in enumerate(checks, start=1) if any("significantly below" in a for a in c.alerts)]
    auc = {week: c.estimate.auc for week, c in enumerate(checks, start=1)}
    assert flagged == list(range(flagged[0], 7)), flagged  # once decayed, flagged every week
    assert all(auc[week] > deployed.auc - 0.03 for week in range(1, flagged[0] + 1)), (deployed.auc, auc)
    assert min(auc.values()) < deployed.auc - 0.05  # the decay does go on: measured 0.82 against 0.89
