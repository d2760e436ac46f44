"""The prediction service: health, lineage, validated predictions, JSON errors and hot swaps.

Every body is built from features.py and the configured data (the ``valid_row`` fixture), never from the
example's columns.
"""

import io
import json
import math
import shutil
import sys
from importlib.metadata import version as package_version

import numpy as np
import pytest

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.cli import PROG
from {{ cookiecutter.package_name }}.data import read_csv
from {{ cookiecutter.package_name }}.features import FEATURES, TARGET, feature_names
from {{ cookiecutter.package_name }}.registry import Registry
from {{ cookiecutter.package_name }}.service import MAX_BODY_BYTES, MAX_DETAILS, MAX_UNSCORABLE, SCHEMA, create_app

ANSWER = f"{TARGET}_probability"
NUMBERS = [f for f in FEATURES if f.kind != "bool"]
FLOATS = [f for f in FEATURES if f.kind == "float"]
HUGE = sys.float_info.max  # a valid value for any feature with no declared maximum


def post(client, body, content_type="application/json"):
    """POST /predict with a raw or JSON-encoded body."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/predict", data=data, content_type=content_type)


def error_fields(response):
    """Check the one error shape and return the fields it names."""
    body = response.get_json()
    assert response.mimetype == "application/json"
    assert set(body) == {"error", "details"}
    assert isinstance(body["error"], str) and body["error"]
    assert all(set(detail) == {"field", "message"} for detail in body["details"])
    return [detail["field"] for detail in body["details"]]


def make_client(registry_root, **config):
    """A test client of a service on ``registry_root`` with some settings changed."""
    return create_app({"REGISTRY": str(registry_root), "RELOAD_INTERVAL": 0, **config}).test_client()


def serving_registry(root, model_dir) -> Registry:
    """A new registry at ``root`` with ``model_dir`` in production."""
    registry = Registry(root)
    registry.promote(registry.register(model_dir), "production")
    return registry


def holdout_rows(data_files, count: int) -> list[dict]:
    """The first ``count`` holdout rows as request bodies."""
    cast = {"float": float, "int": int, "bool": bool}
    rows = read_csv(data_files[1]).X[:count]
    return [{f.name: cast[f.kind](value) for f, value in zip(FEATURES, row, strict=True)} for row in rows]


def test_health_answers_without_a_model(tmp_path):
    client = make_client(tmp_path / "empty")
    response = client.get("/health")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_without_a_model_the_service_is_not_ready_and_predicts_nothing(tmp_path, valid_row):
    client = make_client(tmp_path / "empty")
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert error_fields(ready) == ["stage"]
    assert client.get("/version").status_code == 503
    assert post(client, valid_row).status_code == 503


def test_ready_names_the_production_model(client, registry):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "model_version": registry.current("production")}


def test_the_model_is_loaded_when_the_app_is_created_not_on_the_first_request(tmp_path, registry):
    app = create_app({"REGISTRY": str(registry.root), "RELOAD_INTERVAL": 0})
    version = registry.current("production")
    shutil.rmtree(registry.root)  # nothing left to load from: only a model loaded at creation can answer
    response = app.test_client().get("/ready")
    assert response.get_json() == {"status": "ready", "model_version": version}


def test_version_reports_the_lineage_of_the_served_model(client, model_dir):
    info = client.get("/version").get_json()
    metadata = artifact.read_json(model_dir / artifact.METADATA_FILE)
    metrics = artifact.read_json(model_dir / artifact.METRICS_FILE)
    assert info["model_version"] == metadata["version"]
    assert (info["git_commit"], info["git_dirty"]) == (metadata["git_commit"], metadata["git_dirty"])
    assert info["train_data_sha256"] == metadata["train_data"]["sha256"]
    assert info["holdout_auc"] == metrics["holdout"]["auc"]
    assert info["versions"]["sklearn_version"] == metadata["sklearn_version"]
    assert info["features"] == feature_names()
    assert info["service_version"] == package_version(PROG)


def test_predict_scores_one_row(client, model_dir, valid_row):
    response = post(client, valid_row)
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_version"] == response.headers["X-Model-Version"] == model_dir.name
    expected = artifact.load(model_dir).probability(np.array([[float(valid_row[name]) for name in feature_names()]]))
    assert body[ANSWER] == pytest.approx(expected[0], abs=1e-6)


def test_predict_scores_a_batch_in_order(client, data_files):
    rows = holdout_rows(data_files, 5)
    response = post(client, rows)
    assert response.status_code == 200
    assert response.get_json()[ANSWER] == [post(client, row).get_json()[ANSWER] for row in rows]


def test_predict_accepts_a_whole_number_for_a_float_field(client, valid_row):
    def holds_a_whole_number(feature) -> bool:
        low = -math.inf if feature.minimum is None else feature.minimum
        high = math.inf if feature.maximum is None else feature.maximum
        return math.ceil(low) <= high

    floats = [f for f in FLOATS if holds_a_whole_number(f)]
    if not floats:
        pytest.skip("no float feature's declared range holds a whole number")
    feature = floats[0]
    whole = math.floor(valid_row[feature.name])
    if feature.minimum is not None and whole < feature.minimum:
        whole = math.ceil(valid_row[feature.name])
    if feature.maximum is not None and whole > feature.maximum:
        whole = math.ceil(feature.minimum)
    assert post(client, {**valid_row, feature.name: whole}).status_code == 200


def test_predict_accepts_a_whole_number_written_as_a_float_for_an_int_field(client, valid_row):
    # JSON Schema's "integer" is any number with no fractional part: 1000.0 is one, and /openapi.json promises it
    ints = [f for f in FEATURES if f.kind == "int"]
    if not ints:
        pytest.skip("features.py declares no int feature")
    as_floats = {**valid_row, **{f.name: float(valid_row[f.name]) for f in ints}}
    assert b".0" in json.dumps(as_floats).encode()
    response = post(client, as_floats)
    assert response.status_code == 200
    assert response.get_json()[ANSWER] == post(client, valid_row).get_json()[ANSWER]


def bad_requests(row: dict) -> dict[str, tuple]:
    """Each kind of bad body, made from a valid row and the declared features: (body, status, field it names)."""
    first = FEATURES[0].name
    cases = {
        "body not JSON": (b"{not json", 400, "body"),
        "missing field": ({k: v for k, v in row.items() if k != first}, 422, first),
        "unknown field": ({**row, "not_a_feature": 1}, 422, "not_a_feature"),
        "null": ({**row, first: None}, 422, first),
        "empty list": ([], 422, "body"),
        "bad row in a batch": ([row, {**row, first: None}], 422, f"1.{first}"),
        "a number instead of an object": (7, 422, "body"),
    }
    kinds = {kind: [f for f in FEATURES if f.kind == kind] for kind in ("float", "int", "bool")}
    for f in NUMBERS[:1]:
        cases["string for a number"] = ({**row, f.name: "1"}, 422, f.name)
    for f in kinds["float"][:1]:
        cases["NaN"] = (json.dumps({**row, f.name: float("nan")}).encode(), 422, f.name)
        cases["Infinity"] = (json.dumps({**row, f.name: float("inf")}).encode(), 422, f.name)
    for f in kinds["int"][:1]:
        cases["fraction for a whole number"] = ({**row, f.name: 0.5}, 422, f.name)
    for f in kinds["bool"][:1]:
        cases["number for a yes/no"] = ({**row, f.name: 1}, 422, f.name)
    for f in [f for f in NUMBERS if f.minimum is not None][:1]:
        cases["below its minimum"] = ({**row, f.name: f.minimum - 1}, 422, f.name)
    for f in [f for f in NUMBERS if f.maximum is not None][:1]:
        cases["above its maximum"] = ({**row, f.name: f.maximum + 1}, 422, f.name)
    return cases


@pytest.mark.parametrize("case", bad_requests({f.name: 0 for f in FEATURES}))
def test_bad_input_gets_a_json_error_naming_the_field(client, valid_row, case):
    body, status, field = bad_requests(valid_row)[case]
    response = post(client, body)
    assert response.status_code == status
    assert field in error_fields(response)


def test_a_body_that_is_not_declared_json_is_refused(client, valid_row):
    response = post(client, json.dumps(valid_row).encode(), content_type="text/plain")
    assert response.status_code == 415
    assert error_fields(response) == ["Content-Type"]


def test_a_batch_over_max_batch_is_refused(registry, valid_row):
    client = make_client(registry.root, MAX_BATCH=3)
    assert post(client, [valid_row] * 3).status_code == 200
    response = post(client, [valid_row] * 4)
    assert response.status_code == 422
    assert error_fields(response) == ["body"]
    assert "at most 3" in response.get_json()["details"][0]["message"]


def test_the_body_limit_fits_max_batch_rows_of_the_features(client, valid_row):
    widest = {f.name: -sys.float_info.max if f.kind == "float" else valid_row[f.name] for f in FEATURES}
    assert len(json.dumps([widest] * 1_000, indent=4)) < MAX_BODY_BYTES


def test_a_body_over_the_limit_is_refused(registry, valid_row):
    client = make_client(registry.root, MAX_BODY_BYTES=2_000)
    response = post(client, [valid_row] * (2_000 // len(json.dumps(valid_row)) + 2))
    assert response.status_code == 413
    assert error_fields(response) == ["body"]


def test_a_chunked_body_over_the_limit_is_refused_not_cut_off(registry, valid_row):
    client = make_client(registry.root, MAX_BODY_BYTES=2_000)
    body = json.dumps(valid_row).encode() + b" " * 3_000 + b"garbage"  # valid JSON within the limit, then not
    environ = {"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True}  # what a server sets for chunked
    response = client.post("/predict", content_type="application/json", environ_overrides=environ)
    assert response.status_code == 413
    assert error_fields(response) == ["body"]


def test_error_details_are_capped_and_count_the_rest(client):
    response = post(client, [{}] * 10)
    details = response.get_json()["details"]
    assert response.status_code == 422
    assert len(details) == MAX_DETAILS + 1
    assert details[-1] == {"field": "body", "message": f"and {10 * len(FEATURES) - MAX_DETAILS} more problems"}


def test_a_body_of_thousands_of_unknown_keys_gets_one_short_error(client):
    keys = MAX_BODY_BYTES // 12
    response = post(client, ("{" + ",".join(f'"k{i}":0' for i in range(keys)) + "}").encode())
    assert response.status_code == 422
    assert error_fields(response) == ["body"]
    assert len(response.get_data()) < 500


def test_the_findings_one_megabyte_of_unknown_keys_gets_one_short_error(client):
    body = ("{" + ",".join(f'"{i:x}":0' for i in range(131_000)) + "}").encode()
    response = post(client, body)
    assert response.status_code in (413, 422)  # 413 unless the features make the body limit over 1 MB
    assert error_fields(response) == ["body"]
    assert len(response.get_data()) < 500


def test_an_unknown_route_is_a_json_404(client):
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert error_fields(response) == ["request"]


def test_a_wrong_method_is_a_json_405_naming_the_allowed_ones(client):
    response = client.get("/predict")
    assert response.status_code == 405
    assert error_fields(response) == ["request"]
    assert "POST" in response.headers["Allow"]


def test_options_answers_the_allowed_methods_without_an_html_body(client):
    response = client.options("/predict")
    assert response.status_code == 204
    assert "POST" in response.headers["Allow"]
    assert "Content-Type" not in response.headers and response.get_data() == b""


def test_an_unexpected_error_is_a_json_500_not_an_html_page(client, valid_row, monkeypatch):
    def broken(self, X):
        raise RuntimeError("a bug in the model code")

    monkeypatch.setattr(artifact.LoadedModel, "probability", broken)
    response = post(client, valid_row)
    assert response.status_code == 500
    assert error_fields(response) == ["request"]


@pytest.fixture
def unbounded_client(tmp_path, unbounded_model_dir):
    """A service whose model declares no bound for any number: every finite value is valid."""
    return make_client(serving_registry(tmp_path / "registry", unbounded_model_dir).root)


def overflowing(self, X):
    """A model that cannot score values over 1e300 (as a scaler that overflows to infinity), and NaN below -1e300."""
    if (X > 1e300).any():
        raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
    return np.where((X < -1e300).any(axis=1), np.nan, 0.5)


@pytest.mark.skipif(not FLOATS, reason="features.py declares no float feature")
def test_rows_the_model_cannot_score_get_a_422_naming_the_row_and_the_extreme_field(
    unbounded_client, valid_row, monkeypatch
):
    monkeypatch.setattr(artifact.LoadedModel, "probability", overflowing)
    name = FLOATS[0].name
    rows = [valid_row, {**valid_row, name: HUGE}, valid_row, {**valid_row, name: -HUGE}]
    response = post(unbounded_client, rows)
    assert response.status_code == 422
    assert error_fields(response) == [f"1.{name}", f"3.{name}"]
    one = post(unbounded_client, {**valid_row, name: HUGE})
    assert (one.status_code, error_fields(one)) == (422, [name])


@pytest.mark.skipif(not FLOATS, reason="features.py declares no float feature")
def test_a_batch_of_rows_the_model_cannot_score_names_the_first_few_and_says_the_rest_were_not_checked(
    unbounded_client, valid_row, monkeypatch
):
    monkeypatch.setattr(artifact.LoadedModel, "probability", overflowing)
    name = FLOATS[0].name
    response = post(unbounded_client, [{**valid_row, name: HUGE}] * 30)
    assert response.status_code == 422
    assert error_fields(response) == [f"{row}.{name}" for row in range(MAX_UNSCORABLE)] + ["body"]


@pytest.mark.parametrize("feature", [f.name for f in NUMBERS])
@pytest.mark.parametrize("value", [HUGE, -HUGE, 10**400], ids=["largest float", "smallest float", "10**400"])
def test_an_extreme_valid_value_never_gets_a_5xx_from_the_real_model(unbounded_client, valid_row, feature, value):
    response = post(unbounded_client, [valid_row, {**valid_row, feature: value}])
    assert response.status_code in (200, 422), response.get_data()
    if response.status_code == 422:
        assert error_fields(response) == [f"1.{feature}"]
    else:
        assert all(0 <= score <= 1 for score in response.get_json()[ANSWER])


def test_openapi_describes_the_request_from_the_feature_list(client):
    document = client.get("/openapi.json").get_json()
    schema = document["components"]["schemas"][SCHEMA]
    assert sorted(schema["properties"]) == sorted(schema["required"]) == sorted(feature_names())
    assert schema["additionalProperties"] is False
    for f in NUMBERS:
        assert schema["properties"][f.name].get("maximum") == f.maximum
    responses = document["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "503"} <= responses.keys()


def test_a_newly_promoted_model_is_served_on_the_next_request(client, registry, model_dir, second_model_dir, valid_row):
    assert post(client, valid_row).get_json()["model_version"] == model_dir.name
    registry.promote(registry.register(second_model_dir), "production")
    assert post(client, valid_row).get_json()["model_version"] == second_model_dir.name
    assert client.get("/version").get_json()["model_version"] == second_model_dir.name


def test_a_tampered_newly_promoted_model_is_not_swapped_in(
    client, registry, model_dir, second_model_dir, valid_row, caplog
):
    assert post(client, valid_row).status_code == 200
    new = registry.register(second_model_dir)
    registry.promote(new, "production")
    with (registry.folder(new) / artifact.MODEL_FILE).open("ab") as file:
        file.write(b"\0")  # tampered after promotion, before the service loads it
    response = post(client, valid_row)
    assert response.status_code == 200
    assert response.get_json()["model_version"] == model_dir.name
    assert client.get("/ready").get_json()["model_version"] == model_dir.name
    assert any("refusing" in record.getMessage() and new in record.getMessage() for record in caplog.records)


def test_a_tampered_first_model_is_never_served(tmp_path, registry, valid_row):
    broken = Registry(shutil.copytree(registry.root, tmp_path / "broken"))
    (broken.folder(broken.current("production")) / artifact.MODEL_FILE).write_bytes(b"tampered")
    client = make_client(broken.root)
    assert client.get("/ready").status_code == 503
    assert post(client, valid_row).status_code == 503


def raise_unexpected(folder):
    """A load that fails in a way no one planned for."""
    raise RuntimeError(f"unexpected trouble in {folder.name}")


def holdout_as_list(folder):
    """Tamper with metrics.json so that reading its holdout AUC fails."""
    (folder / artifact.METRICS_FILE).write_text(json.dumps({"holdout": []}))


@pytest.mark.parametrize("break_it", ["unexpected exception", "holdout as a list"])
def test_any_load_error_leaves_the_worker_up_and_not_ready_until_a_good_model_is_promoted(
    tmp_path, registry, second_model_dir, monkeypatch, caplog, break_it
):
    first = registry.current("production")
    if break_it == "unexpected exception":
        monkeypatch.setattr(artifact, "load", raise_unexpected)
    else:
        holdout_as_list(registry.folder(first))
    client = make_client(registry.root)
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert error_fields(ready) == ["stage"]
    assert any("refusing" in record.getMessage() and first in record.getMessage() for record in caplog.records)
    monkeypatch.undo()
    registry.promote(registry.register(second_model_dir), "production")
    assert client.get("/ready").get_json() == {"status": "ready", "model_version": second_model_dir.name}


@pytest.fixture
def own_client(tmp_path, own_model_dir):
    """A service whose production model was trained on the other feature list."""
    return make_client(serving_registry(tmp_path / "registry", own_model_dir).root)


def test_a_model_of_another_feature_list_is_served_with_its_own_schema(own_client, own_features):
    names = [feature.name for feature in own_features]
    assert own_client.get("/version").get_json()["features"] == names
    response = post(own_client, {"age": 30, "balance": 1_250.0, "is_member": True})
    assert response.status_code == 200
    assert 0 <= response.get_json()[ANSWER] <= 1
    schema = own_client.get("/openapi.json").get_json()["components"]["schemas"][SCHEMA]
    assert sorted(schema["properties"]) == sorted(names)


def test_a_model_of_another_feature_list_validates_against_its_own_fields(own_client, own_features, valid_row):
    foreign = dict(list(valid_row.items())[:3])  # a few fields of this project's rows, so each one can be named
    response = post(own_client, foreign)
    assert response.status_code == 422
    own = {feature.name for feature in own_features}
    assert own ^ set(foreign) <= set(error_fields(response))
    too_young = post(own_client, {"age": 17, "balance": 10.0, "is_member": False})
    assert (too_young.status_code, error_fields(too_young)) == (422, ["age"])
