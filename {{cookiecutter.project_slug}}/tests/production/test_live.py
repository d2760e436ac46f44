"""The live monitor: AUC per version and week of live labelled rows; only production's alerts advise a retrain."""

import json

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.config import GateSettings, Settings
from {{ cookiecutter.package_name }}.production.feedback import load
from {{ cookiecutter.package_name }}.production.live import live_report, write_outputs
from {{ cookiecutter.package_name }}.production.simulate import label_time

SETTINGS = Settings(max_psi=0.2, gate=GateSettings(min_auc=0.8, max_auc_drop=0.01, confidence=0.95))


@pytest.fixture(scope="module")
def labelled(draw_training):
    """4,000 labelled rows like those the model was trained on, drawn from its training data."""
    return draw_training(4_000)  # enough rows, however small the table


@pytest.mark.slow
def test_only_the_production_models_alerts_advise_a_retrain(registry, own_model_dir, write_live, labelled):
    production = registry.current("production")
    other = registry.register(own_model_dir)
    y, rng = labelled.y, np.random.default_rng(0)
    write_live(other, y, rng.random(len(y)), X=labelled.X)  # a chance-level model, not in production
    write_live("unknown-version", y, rng.random(len(y)), X=labelled.X)
    stores = write_live(production, y, y * 0.5 + 0.25, X=labelled.X)
    report = live_report(registry, load(*stores), SETTINGS)
    assert {(c.version, c.period, bool(c.alerts)) for c in report.checks} == {  # versions of one second: any order
        (production, "2026-W02", False),
        (other, "2026-W02", True),
    }
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
