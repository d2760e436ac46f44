"""Monitoring: live AUC per version and week against the deploy-time AUC, drift, and which alerts advise a retrain."""

import json

import numpy as np
import pytest

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.config import GateSettings, Settings
from {{ cookiecutter.package_name }}.data import write_csv
from {{ cookiecutter.package_name }}.feedback import load
from {{ cookiecutter.package_name }}.monitor import Deployed, check, live_report, offline_report, write_outputs
from {{ cookiecutter.package_name }}.simulate import label_time

SETTINGS = Settings(max_psi=0.2, gate=GateSettings(min_auc=0.8, max_auc_drop=0.01, confidence=0.95))


@pytest.fixture(scope="module")
def production(model_dir):
    """The session model and what it promised at deploy time."""
    return artifact.load(model_dir), Deployed.of(model_dir)


@pytest.fixture(scope="module")
def labelled(draw_holdout):
    """4,000 labelled rows like those the model was trained on: drawn from the configured source's holdout."""
    return draw_holdout(4_000)  # enough rows, however small the holdout


def test_the_model_raises_no_alert_on_data_like_its_holdout(model_dir, labelled, tmp_path):
    write_csv(tmp_path / "labelled.csv", labelled)
    report = offline_report(model_dir, "holdout", tmp_path / "labelled.csv", SETTINGS)
    assert report.alerts == []
    assert report.lines()[-1] == "OK: no retrain needed"
    (result,) = report.checks
    assert set(result.psi) == {feature.name for feature in artifact.load(model_dir).features}
    assert result.rows == len(labelled.y) and result.p_drop > 0.05


def test_a_significant_drop_alerts_even_above_the_floor(production, labelled):
    model, deployed = production
    live = model.probability(labelled.X)
    promised = Deployed(deployed.version, 0.97, 0.005, deployed.profile)
    result = check(promised, "2026-W02", labelled.y, live, labelled.X, SETTINGS)
    assert result.estimate.auc > SETTINGS.gate.min_auc
    assert [alert.split(" (p = ")[0] for alert in result.alerts] == [
        f"AUC {result.estimate.auc:.4f} is significantly below its deploy-time 0.9700"
    ]


def test_a_drop_within_the_noise_of_both_estimates_does_not_alert(production, labelled):
    model, deployed = production
    live = model.probability(labelled.X)
    auc = check(deployed, "2026-W02", labelled.y, live, labelled.X, SETTINGS).estimate.auc
    promised = Deployed(deployed.version, auc + 0.01, deployed.std_error, deployed.profile)
    result = check(promised, "2026-W02", labelled.y, live, labelled.X, SETTINGS)
    assert result.alerts == () and 0.05 < result.p_drop < 0.5


def test_a_week_with_too_few_labels_has_no_estimate_and_no_alert(production, labelled):
    model, deployed = production
    X, y = labelled.X[:3], np.array([0, 0, 1])
    result = check(deployed, "2026-W02", y, model.probability(X), X, SETTINGS)
    assert (result.estimate, result.p_drop, result.psi, result.alerts) == (None, None, {}, ())


@pytest.mark.slow
def test_only_the_production_models_alerts_advise_a_retrain(registry, own_model_dir, write_live, labelled):
    production = registry.current("production")
    other = registry.register(own_model_dir)
    y, rng = labelled.y, np.random.default_rng(0)
    write_live(other, y, rng.random(len(y)), X=labelled.X)  # a chance-level model, not in production
    write_live("unknown-version", y, rng.random(len(y)), X=labelled.X)
    stores = write_live(production, y, y * 0.5 + 0.25, X=labelled.X)
    report = live_report(registry, load(*stores), SETTINGS)
    assert [(c.version, c.period, bool(c.alerts)) for c in report.checks] == [
        (production, "2026-W02", False),
        (other, "2026-W02", True),
    ]
    assert report.alerts == [] and report.lines()[-1] == "OK: no retrain needed"
    assert any(note.startswith(f"left out {len(y)} rows of unknown-version") for note in report.notes)

    write_live(production, y, rng.random(len(y)), X=labelled.X, labelled=label_time(3))
    report = live_report(registry, load(*stores), SETTINGS)
    assert report.alerts and all(alert.endswith("(2026-W03)") for alert in report.alerts)


@pytest.mark.slow
def test_the_report_is_written_as_json_markdown_and_a_png(registry, write_live, labelled, tmp_path):
    production = registry.current("production")
    y = labelled.y
    report = live_report(registry, load(*write_live(production, y, y * 0.5 + 0.25, X=labelled.X)), SETTINGS)
    markdown = write_outputs(report, tmp_path / "out").read_text()
    assert markdown.startswith("## Monitor: no retrain needed")
    assert f"| {production} | 2026-W02 | {len(y)} |" in markdown and "![Live AUC by week](trend.png)" in markdown
    assert (tmp_path / "out" / "trend.png").read_bytes().startswith(b"\x89PNG")
    written = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert written["retrain_advised"] is False and written["checks"][0]["estimate"]["auc"] == 1.0
