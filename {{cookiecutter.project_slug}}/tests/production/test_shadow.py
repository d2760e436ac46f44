"""The shadow model: scores every row beside the served model, is logged, and never changes the answer."""

import json
import time

import numpy as np
import pytest

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.features import feature_names
from {{ cookiecutter.package_name }}.production.predictions import read_records
from {{ cookiecutter.package_name }}.registry import Registry
from {{ cookiecutter.package_name }}.service import ANSWER, create_app
from {{ cookiecutter.package_name }}.train import train


def make_app(registry, **config):
    """The service on ``registry`` with some settings changed."""
    return create_app({"REGISTRY": str(registry.root), "RELOAD_INTERVAL": 0, **config})


def post(client, body):
    """POST /predict with a JSON body."""
    return client.post("/predict", data=json.dumps(body), content_type="application/json")


def logged(app, folder):
    """Every record the app logged into ``folder``, once its writer has written everything and stopped."""
    app.extensions["predictions"].log.close()
    return list(read_records(folder))


def expected_scores(model_dir, rows):
    """What a model folder scores the rows, rounded as the service rounds."""
    matrix = np.array([[float(row[name]) for name in feature_names()] for row in rows])
    return artifact.load(model_dir).probability(matrix).round(6).tolist()


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory, data_files):
    """A version that scores differently: trained on the holdout, scored on the training rows (read-only)."""
    train_csv, holdout_csv = data_files
    folder, _ = train(holdout_csv, train_csv, tmp_path_factory.mktemp("artifacts"), seed=0)
    return folder


@pytest.fixture
def promoted(registry, other_model_dir) -> Registry:
    """The registry after another version replaced the first in production."""
    registry.promote(registry.register(other_model_dir), "production")
    return registry


def test_the_previous_production_model_scores_every_row_without_changing_the_answer(
    promoted, model_dir, valid_rows, tmp_path
):
    plain = post(make_app(promoted).test_client(), valid_rows).get_json()
    app = make_app(promoted, PREDICTION_LOG=str(tmp_path), MODEL_SHADOW="previous")
    answer = post(app.test_client(), valid_rows).get_json()
    assert answer == plain
    records = logged(app, tmp_path)
    assert {r["model_version"] for r in records} == {promoted.current("production")}
    assert {r["shadow_version"] for r in records} == {model_dir.name} == {promoted.previous_production()}
    assert [r["shadow_score"] for r in records] == expected_scores(model_dir, valid_rows)
    assert [r["score"] for r in records] == answer[ANSWER] != [r["shadow_score"] for r in records]


def test_a_staging_shadow_scores_with_the_staging_model(registry, second_model_dir, valid_row, tmp_path):
    registry.promote(registry.register(second_model_dir), "staging")
    app = make_app(registry, PREDICTION_LOG=str(tmp_path), MODEL_SHADOW="staging")
    post(app.test_client(), valid_row)
    (record,) = logged(app, tmp_path)
    assert record["model_version"] == registry.current("production")
    assert record["shadow_version"] == second_model_dir.name
    assert record["shadow_score"] == expected_scores(second_model_dir, [valid_row])[0]


def test_a_shadow_that_is_the_served_model_logs_the_answer_as_its_score(registry, valid_row, tmp_path):
    registry.promote(registry.current("production"), "staging")
    app = make_app(registry, PREDICTION_LOG=str(tmp_path), MODEL_SHADOW="staging")
    post(app.test_client(), valid_row)
    (record,) = logged(app, tmp_path)
    assert (record["shadow_version"], record["shadow_score"]) == (record["model_version"], record["score"])


def test_without_a_previous_production_model_there_is_no_shadow(registry, valid_row, tmp_path):
    app = make_app(registry, PREDICTION_LOG=str(tmp_path), MODEL_SHADOW="previous")
    assert post(app.test_client(), valid_row).status_code == 200
    (record,) = logged(app, tmp_path)
    assert (record["shadow_version"], record["shadow_score"]) == (None, None)


def test_a_shadow_that_fails_to_load_is_counted_and_ignored(promoted, model_dir, valid_row, tmp_path, metric, caplog):
    plain = post(make_app(promoted).test_client(), valid_row).get_json()
    with (promoted.folder(model_dir.name) / artifact.MODEL_FILE).open("ab") as file:
        file.write(b"\0")  # the previous version, tampered with
    app = make_app(promoted, PREDICTION_LOG=str(tmp_path), MODEL_SHADOW="previous")
    client = app.test_client()
    assert post(client, valid_row).get_json() == plain
    assert metric(client, "shadow_failures_total", stage="load") == 1
    assert any("shadow (previous) not loaded" in record.getMessage() for record in caplog.records)
    (record,) = logged(app, tmp_path)
    assert (record["shadow_version"], record["shadow_score"]) == (None, None)


def test_a_shadow_that_fails_to_score_is_counted_and_ignored(registry, own_model_dir, valid_row, tmp_path, metric):
    registry.promote(registry.register(own_model_dir), "staging")  # a model of another feature list
    plain = post(make_app(registry).test_client(), valid_row).get_json()
    app = make_app(registry, PREDICTION_LOG=str(tmp_path), MODEL_SHADOW="staging")
    client = app.test_client()
    assert post(client, valid_row).get_json() == plain
    assert post(client, valid_row).get_json() == plain
    records = logged(app, tmp_path)  # the log's writer scores the shadow: once it is done
    assert metric(client, "shadow_failures_total", stage="score") == 2
    assert [(r["shadow_version"], r["shadow_score"]) for r in records] == [(own_model_dir.name, None)] * 2


def test_a_shadow_without_the_prediction_log_is_refused_since_its_scores_would_go_nowhere(registry, valid_row, caplog):
    registry.promote(registry.current("production"), "staging")
    app = make_app(registry, PREDICTION_LOG="off", MODEL_SHADOW="staging")
    assert post(app.test_client(), valid_row).status_code == 200
    assert app.extensions["predictions"].shadow is None
    assert any("MODEL_SHADOW is set but PREDICTION_LOG is off" in r.getMessage() for r in caplog.records)


def test_the_shadow_scores_many_requests_with_one_model_call(promoted, model_dir, valid_rows, tmp_path, monkeypatch):
    app = make_app(promoted, PREDICTION_LOG=str(tmp_path), MODEL_SHADOW="previous")
    shadow, calls = app.extensions["predictions"].shadow, []
    predict_proba = shadow.model.estimator.predict_proba
    monkeypatch.setattr(shadow.model.estimator, "predict_proba", lambda X: calls.append(len(X)) or predict_proba(X))
    log = app.extensions["predictions"].log
    with log._ready:  # hold the writer back while five requests are answered, as under load
        client = app.test_client()
        answers = [post(client, valid_rows[i : i + 2]).status_code for i in range(0, 10, 2)]
    records = logged(app, tmp_path)
    assert answers == [200] * 5 and calls == [10]
    assert [r["shadow_score"] for r in records] == expected_scores(model_dir, valid_rows[:10])


def test_an_unknown_model_shadow_is_refused_with_an_error_and_no_shadow(registry, valid_row, tmp_path, caplog):
    app = make_app(registry, PREDICTION_LOG=str(tmp_path), MODEL_SHADOW="yesterday")
    assert post(app.test_client(), valid_row).status_code == 200
    assert any("MODEL_SHADOW" in r.getMessage() and "'yesterday'" in r.getMessage() for r in caplog.records)
    (record,) = logged(app, tmp_path)
    assert record["shadow_version"] is None


def test_the_shadow_follows_its_pointer_without_delaying_requests(registry, second_model_dir, valid_row, tmp_path):
    app = make_app(registry, PREDICTION_LOG=str(tmp_path), MODEL_SHADOW="staging")
    client = app.test_client()
    post(client, valid_row)
    deadline = time.monotonic() + 30
    while not list(read_records(tmp_path)):  # the writer batches: wait for the first record, logged with no shadow
        assert time.monotonic() < deadline
        time.sleep(0.05)
    registry.promote(registry.register(second_model_dir), "staging")
    while app.extensions["predictions"].shadow.model is None:  # loaded in the background, not in a request
        assert post(client, valid_row).status_code == 200 and time.monotonic() < deadline
        time.sleep(0.05)
    post(client, valid_row)
    records = logged(app, tmp_path)
    assert records[0]["shadow_version"] is None
    assert records[-1]["shadow_version"] == second_model_dir.name
