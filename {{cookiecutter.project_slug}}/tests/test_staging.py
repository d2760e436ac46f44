"""Staging: the smoke test's requests, the staging server, and scored staging (skew, then the gate on the answers)."""

import io
import json
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from {{ cookiecutter.package_name }} import artifact, pipeline, service, staging
from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.data import read_csv
from {{ cookiecutter.package_name }}.features import FEATURES, Feature
from {{ cookiecutter.package_name }}.pipeline import Console
from {{ cookiecutter.package_name }}.registry import Registry
from {{ cookiecutter.package_name }}.service import create_app
from {{ cookiecutter.package_name }}.staging import (
    BATCH_ROWS,
    StageFailed,
    score_staging,
    served_scores,
    skew,
    smoke_requests,
)


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


def staged_run(registry, data_files, gate_settings, url, tmp_path) -> pipeline.Run:
    """A pipeline run at the score_staging stage: staging holds the session model, served at ``url``."""
    settings = Settings(registry=registry.root, gate=gate_settings)
    run = pipeline.Run(settings, console=Console(screen=io.StringIO(), verbose=True))
    run.version, run.holdout_csv, run.candidate = registry.current("staging"), data_files[1], tmp_path
    run.staging_url = url
    return run


@pytest.mark.slow  # an HTTP server scoring the whole holdout: a staging run in miniature
def test_staging_that_serves_the_model_file_passes_and_the_gate_judges_what_it_served(
    staging_url, registry, data_files, gate_settings, tmp_path
):
    version = registry.current("staging")
    found, result = score_staging(
        staging_url, registry.folder(version), data_files[1], registry.folder(version), gate_settings
    )
    assert found.rows == len(read_csv(data_files[1]).y) and found.differing == 0 and result.decision == "pass"
    assert result.scored_by == f"the staging service at {staging_url}" == result.to_dict()["scored_by"]
    # the same model, served faithfully: only its rounding to 6 decimals (a few tied pairs) can move the AUC
    assert result.comparison.difference == pytest.approx(0, abs=1e-4)

    run = staged_run(registry, data_files, gate_settings, staging_url, tmp_path)
    pipeline.score_staging(run)
    assert "served as the model file scores them; gate on them: pass" in run.console.screen.getvalue()
    assert "as the staging service at" in (tmp_path / "staging" / "report.md").read_text()


@pytest.mark.slow  # an HTTP server scoring the whole holdout: a staging run in miniature
def test_a_column_read_in_another_unit_is_traced_to_its_feature_and_stops_the_pipeline_at_staging(
    staging_url, rescaled_input, registry, data_files, gate_settings, tmp_path
):
    version, production = registry.current("staging"), registry.current("production")
    model = artifact.load(registry.folder(version))
    found, _ = score_staging(
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

    run = staged_run(registry, data_files, gate_settings, staging_url, tmp_path)
    assert pipeline.run_pipeline(run, [pipeline.score_staging, pipeline.promote_to_production]) == 1
    shown = run.console.screen.getvalue()
    assert "FAILED at stage score_staging: staging served other scores than the model file" in shown
    assert registry.current("production") == production
    assert json.loads((tmp_path / "staging" / "gate.json").read_text())["scored_by"].startswith("the staging service")


def test_a_served_answer_that_is_no_number_is_skew_not_a_match():
    offline = np.array([0.25, 0.5, 0.75])
    found = skew(np.array([0.25, float("nan"), 0.75]), offline)
    assert (found.differing, found.largest) == (1, float("inf"))
    assert skew(offline + 5e-7, offline).differing == 0  # the service's rounding to 6 decimals is no skew


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, "[]"),
        (200, '{"ANSWER": null}'),
        (200, '{"ANSWER": ["a"]}'),
        (200, '{"ANSWER": [0.5, 0.5]}'),
        (200, "not json"),
        (503, '{"error": "no model"}'),
    ],
    ids=["a list", "null", "text", "too many", "not JSON", "503"],
)
def test_a_staging_answer_of_another_shape_or_status_is_a_clear_error(monkeypatch, status, body):
    class Response:
        def __init__(self):
            self.status = status

        def read(self):
            return body.replace("ANSWER", staging.ANSWER).encode()

    monkeypatch.setattr(staging.http.client.HTTPConnection, "request", lambda *args, **kwargs: None)
    monkeypatch.setattr(staging.http.client.HTTPConnection, "getresponse", lambda self: Response())
    with pytest.raises(StageFailed, match=f"answered a batch of 1 holdout rows with {status}"):
        staging.post("http://127.0.0.1:1", [{"x": 1.0}])


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

    def skewed(self, rows):
        """A serving bug: the most influential column read from the wrong rows (its values stay valid ones)."""
        X = matrix(self, rows)
        X[:, influential] = X[::-1, influential]
        return X

    monkeypatch.setattr(service.Serving, "matrix", skewed)
    assert main(command) == 1
    assert "FAILED: staging served other scores than the model file" in capsys.readouterr().err


@pytest.mark.parametrize("own", [False, True], ids=["configured features", "another feature list"])
def test_smoke_requests_are_one_valid_request_and_bad_ones_the_service_rejects(
    own, client, data_files, tmp_path, own_features, own_model_dir
):
    if own:
        registry = Registry(tmp_path / "registry")
        registry.promote(registry.register(own_model_dir), "production")
        client = create_app({"REGISTRY": str(registry.root), "RELOAD_INTERVAL": 0}).test_client()
        features, row = own_features, [30.0, 1_000.0, 1.0]
    else:
        features, row = FEATURES, read_csv(data_files[1]).X[0].tolist()
    valid, bad = smoke_requests(features, row)
    kinds = {"float": float, "int": int, "bool": bool}
    assert list(valid) == [feature.name for feature in features]
    assert all(type(valid[feature.name]) is kinds[feature.kind] for feature in features)
    assert client.post("/predict", json=valid).status_code == 200
    assert {"body not JSON", "missing field", "unknown field", "wrong type", "NaN", "empty list"} <= bad.keys()
    if own:
        assert valid == {"age": 30, "balance": 1_000.0, "is_member": True} and "age below its minimum" in bad
    for name, (body, content_type) in bad.items():
        status = client.post("/predict", data=body, content_type=content_type).status_code
        assert 400 <= status < 500, name


@pytest.mark.parametrize("bounds", ["none", "maximum", "bool"], ids=["no-bound-at-all", "only-maxima", "all-bool"])
def test_smoke_requests_need_no_declared_minimum(bounds):
    if bounds == "bool":
        features = tuple(Feature(f"flag_{i}", "bool") for i in range(3))
    else:
        features = tuple(Feature(f.name, f.kind, None, f.maximum if bounds == "maximum" else None) for f in FEATURES)
    valid, bad = smoke_requests(features, [1.0] * len(features))
    out_of_range = [name for name in bad if name.endswith(("its minimum", "its maximum"))]
    bounded = [f for f in features if f.kind != "bool" and f.maximum is not None]
    assert out_of_range == ([f"{bounded[0].name} above its maximum"] if bounded else [])
    assert {"missing field", "unknown field", "wrong type", "NaN", "empty list"} <= bad.keys()


def test_a_staging_server_that_dies_shows_its_last_lines_in_the_error():
    script = "print('first line'); print('cannot load the staging model: broken manifest'); raise SystemExit(3)"
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen([sys.executable, "-c", script], stdout=log, stderr=subprocess.STDOUT, text=True)
        server.wait(timeout=30)
        with pytest.raises(StageFailed) as failure:
            staging.wait_until_ready(f"http://127.0.0.1:{staging.free_port()}", server, 5, log)
    message = str(failure.value)
    assert "exited with code 3" in message
    assert message.endswith("last lines:\nfirst line\ncannot load the staging model: broken manifest")
