"""Scored staging: the holdout through the staging service; skew against the model file, and the gate on its answers."""

import io
import json

import numpy as np
import pytest

from {{ cookiecutter.package_name }} import artifact, pipeline, service, staging
from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.data import read_csv
from {{ cookiecutter.package_name }}.pipeline import Console
from {{ cookiecutter.package_name }}.service import create_app
from {{ cookiecutter.package_name }}.staging import BATCH_ROWS, StagingError, score_staging, served_scores, skew


@pytest.fixture(scope="module")
def influential(model_dir, data_files) -> int:
    """The column whose values move the model's scores most: reading it wrong certainly changes the answers."""
    model = artifact.load(model_dir)
    X = read_csv(data_files[1], model.features).X
    scores, changes = model.probability(X), []
    for column in range(X.shape[1]):
        moved = X.copy()
        moved[:, column] = moved[::-1, column]
        changes.append(np.abs(model.probability(moved) - scores).mean())
    return int(np.argmax(changes))


@pytest.fixture
def staging_url(registry, serve):
    """The session model served as staging (and production) by a real HTTP server on 127.0.0.1."""
    registry.promote(registry.current("production"), "staging")
    return serve(create_app({"REGISTRY": str(registry.root), "STAGE": "staging", "RELOAD_INTERVAL": 0}))


@pytest.fixture
def rescaled_input(monkeypatch, influential):
    """A serving bug: the service reads one column in another unit (times 1,000) than training did."""
    matrix = service.Serving.matrix

    def misread(self, rows):
        X = matrix(self, rows)
        X[:, influential] *= 1_000
        return X

    monkeypatch.setattr(service.Serving, "matrix", misread)
    return influential


@pytest.mark.slow  # an HTTP server scoring the whole holdout: a staging run in miniature
def test_staging_serves_every_holdout_row_as_the_model_file_scores_it(staging_url, registry, data_files):
    model = artifact.load(registry.folder(registry.current("staging")))
    X = read_csv(data_files[1], model.features).X
    served = served_scores(staging_url, model.features, X)
    assert served.shape == (len(X),)
    assert skew(served, model.probability(X)).differing == 0


@pytest.mark.slow  # an HTTP server scoring the whole holdout: a staging run in miniature
def test_the_gate_judges_what_staging_served_and_the_report_says_so(staging_url, registry, data_files, gate_settings):
    version = registry.current("staging")
    found, result = score_staging(
        staging_url, registry.folder(version), data_files[1], registry.folder(version), gate_settings
    )
    assert found.differing == 0 and result.decision == "pass"
    assert result.scored_by == f"the staging service at {staging_url}"
    # the same model, served faithfully: only its rounding to 6 decimals (a few tied pairs) can move the AUC
    assert result.comparison.difference == pytest.approx(0, abs=1e-4)
    assert result.to_dict()["scored_by"] == result.scored_by


@pytest.mark.slow  # an HTTP server scoring the whole holdout: a staging run in miniature
def test_a_column_read_in_another_unit_is_skew_counted_measured_and_traced_to_its_feature(
    staging_url, rescaled_input, registry, data_files, gate_settings
):
    version = registry.current("staging")
    model = artifact.load(registry.folder(version))
    found, result = score_staging(
        staging_url, registry.folder(version), data_files[1], registry.folder(version), gate_settings
    )
    X = read_csv(data_files[1], model.features).X
    wrong = X.copy()
    wrong[:, rescaled_input] *= 1_000
    expected = np.abs(model.probability(wrong).round(6) - model.probability(X)) > 1e-6
    assert found.rows == len(X) and found.differing == int(expected.sum()) > 0
    assert found.largest > 1e-6
    name = model.features[rescaled_input].name
    assert name in found.suspects
    message = found.message()
    assert f"on {found.differing} of {len(X)} holdout rows" in message and name in message


def test_a_served_answer_that_is_no_number_is_skew_not_a_match():
    offline = np.array([0.25, 0.5, 0.75])
    found = skew(np.array([0.25, float("nan"), 0.75]), offline)
    assert (found.differing, found.largest) == (1, float("inf"))
    assert skew(offline + 5e-7, offline).differing == 0  # the service's rounding to 6 decimals is no skew


@pytest.mark.parametrize("body", ["[]", '{"ANSWER": null}', '{"ANSWER": ["a"]}', '{"ANSWER": [0.5, 0.5]}', "not json"])
def test_a_staging_answer_of_another_shape_is_a_clear_error(monkeypatch, body):
    class Response:
        status = 200

        def read(self):
            return body.replace("ANSWER", staging.ANSWER).encode()

    monkeypatch.setattr(staging.http.client.HTTPConnection, "request", lambda *args, **kwargs: None)
    monkeypatch.setattr(staging.http.client.HTTPConnection, "getresponse", lambda self: Response())
    with pytest.raises(StagingError, match="answered a batch of 1 holdout rows with 200"):
        staging.post("http://127.0.0.1:1", [{"x": 1.0}])


def test_a_service_that_does_not_answer_a_batch_is_a_clear_error(tmp_path, serve, registry, data_files):
    empty = serve(create_app({"REGISTRY": str(tmp_path / "no-registry")}))  # no model: 503
    model = artifact.load(registry.folder(registry.current("production")))
    X = read_csv(data_files[1], model.features).X[:3]
    with pytest.raises(StagingError, match=r"answered a batch of 3 holdout rows with 503"):
        served_scores(empty, model.features, X)


def test_the_holdout_goes_in_batches_the_service_accepts(monkeypatch, registry, data_files):
    sent = []

    def post(base, rows):
        sent.append(len(rows))
        return [0.5] * len(rows)

    monkeypatch.setattr(staging, "post", post)
    model = artifact.load(registry.folder(registry.current("production")))
    X = np.repeat(read_csv(data_files[1], model.features).X[:1], 2 * BATCH_ROWS + 1, axis=0)
    assert served_scores("http://127.0.0.1:1", model.features, X).tolist() == [0.5] * len(X)
    assert sent == [BATCH_ROWS, BATCH_ROWS, 1] and BATCH_ROWS <= service.MAX_BATCH


def staged_run(registry, data_files, gate_settings, url, tmp_path) -> pipeline.Run:
    """A pipeline run at the score_staging stage: staging holds the session model, served at ``url``."""
    settings = Settings(registry=registry.root, gate=gate_settings)
    run = pipeline.Run(settings, console=Console(screen=io.StringIO(), verbose=True))
    run.version, run.holdout_csv, run.candidate = registry.current("staging"), data_files[1], tmp_path
    run.staging_url = url
    return run


@pytest.mark.slow  # an HTTP server scoring the whole holdout: a staging run in miniature
def test_the_pipeline_passes_staging_that_serves_the_model_file(
    staging_url, registry, data_files, gate_settings, tmp_path
):
    run = staged_run(registry, data_files, gate_settings, staging_url, tmp_path)
    pipeline.score_staging(run)
    assert "served as the model file scores them; gate on them: pass" in run.console.screen.getvalue()
    assert "as the staging service at" in (tmp_path / "staging" / "report.md").read_text()


@pytest.mark.slow  # an HTTP server scoring the whole holdout: a staging run in miniature
def test_a_serving_bug_stops_the_pipeline_at_staging_and_production_stays(
    staging_url, rescaled_input, registry, data_files, gate_settings, tmp_path
):
    production = registry.current("production")
    run = staged_run(registry, data_files, gate_settings, staging_url, tmp_path)
    assert pipeline.run_pipeline(run, [pipeline.score_staging, pipeline.promote_to_production]) == 1
    shown = run.console.screen.getvalue()
    assert "FAILED at stage score_staging: staging served other scores than the model file" in shown
    assert registry.current("production") == production
    assert json.loads((tmp_path / "staging" / "gate.json").read_text())["scored_by"].startswith("the staging service")


@pytest.mark.slow  # an HTTP server scoring the whole holdout: a staging run in miniature
def test_smoke_test_score_gates_what_the_service_serves_and_fails_on_skew(
    project, staging_url, registry, monkeypatch, capsys, influential
):
    monkeypatch.setenv("MODEL_REGISTRY", str(registry.root))
    version = registry.current("staging")
    command = ["smoke-test", staging_url, "--version", version, "--score", "--out", "report"]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "## AUC gate: PASSED" in out and f"as the staging service at {staging_url}" in out
    matrix = service.Serving.matrix
    monkeypatch.setattr(service.Serving, "matrix", lambda self, rows: matrix(self, rows)[:, ::-1].copy())
    assert main(command) == 1
    assert "FAILED: staging served other scores than the model file" in capsys.readouterr().err
