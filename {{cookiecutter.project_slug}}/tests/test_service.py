"""The prediction service: health, lineage, validated predictions, JSON errors and hot swaps."""

import json
import shutil
from importlib.metadata import version as package_version

import pytest

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.cli import PROG
from {{ cookiecutter.package_name }}.features import feature_names
from {{ cookiecutter.package_name }}.registry import Registry
from {{ cookiecutter.package_name }}.service import create_app

VALID = {
    "amount": 42.5,
    "hour": 14,
    "merchant_risk": 0.3,
    "distance_from_home_km": 12.0,
    "card_present": True,
    "transactions_last_24h": 3,
}


def post(client, body, content_type="application/json"):
    """POST /predict with a raw or JSON-encoded body."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/predict", data=data, content_type=content_type)


def error_fields(response):
    """Check the one error shape and return the fields it names."""
    body = response.get_json()
    assert set(body) == {"error", "details"}
    assert isinstance(body["error"], str) and body["error"]
    assert all(set(detail) == {"field", "message"} for detail in body["details"])
    return [detail["field"] for detail in body["details"]]


def make_client(registry_root, **config):
    """A test client of a service on ``registry_root`` with some settings changed."""
    return create_app({"REGISTRY": str(registry_root), "RELOAD_INTERVAL": 0, **config}).test_client()


def test_health_answers_without_a_model(tmp_path):
    client = make_client(tmp_path / "empty")
    response = client.get("/health")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_without_a_model_the_service_is_not_ready_and_predicts_nothing(tmp_path):
    client = make_client(tmp_path / "empty")
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert error_fields(ready) == ["stage"]
    assert client.get("/version").status_code == 503
    assert post(client, VALID).status_code == 503


def test_ready_names_the_production_model(client, registry):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "model_version": registry.current("production")}


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


def test_predict_scores_one_transaction(client, model_dir):
    response = post(client, VALID)
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_version"] == response.headers["X-Model-Version"] == model_dir.name
    expected = artifact.load(model_dir).probability([[float(VALID[name]) for name in feature_names()]])[0]
    assert body["fraud_probability"] == pytest.approx(expected, abs=1e-6)


def test_predict_scores_a_batch_in_order(client):
    rows = [VALID, {**VALID, "amount": 900.0, "hour": 3}, {**VALID, "card_present": False}]
    response = post(client, rows)
    assert response.status_code == 200
    batch = response.get_json()["fraud_probability"]
    assert batch == [post(client, row).get_json()["fraud_probability"] for row in rows]
    assert len(set(batch)) == 3


def test_predict_accepts_a_whole_number_for_a_float_field(client):
    assert post(client, {**VALID, "amount": 40}).status_code == 200


def without(key):
    """VALID without one field."""
    return {k: v for k, v in VALID.items() if k != key}


BAD_REQUESTS = {
    "body not JSON": (b"{not json", 400, "body"),
    "missing field": (without("hour"), 422, "hour"),
    "unknown field": ({**VALID, "colour": "red"}, 422, "colour"),
    "string for a number": ({**VALID, "amount": "42.5"}, 422, "amount"),
    "fraction for a whole number": ({**VALID, "hour": 3.5}, 422, "hour"),
    "number for a yes/no": ({**VALID, "card_present": 1}, 422, "card_present"),
    "null": ({**VALID, "merchant_risk": None}, 422, "merchant_risk"),
    "NaN": (json.dumps({**VALID, "amount": float("nan")}).encode(), 422, "amount"),
    "Infinity": (json.dumps({**VALID, "distance_from_home_km": float("inf")}).encode(), 422, "distance_from_home_km"),
    "negative amount": ({**VALID, "amount": -1.0}, 422, "amount"),
    "hour above its maximum": ({**VALID, "hour": 24}, 422, "hour"),
    "empty list": ([], 422, "body"),
    "bad row in a batch": ([VALID, {**VALID, "amount": -1.0}], 422, "1.amount"),
    "a number instead of an object": (7, 422, "body"),
}


@pytest.mark.parametrize(("body", "status", "field"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_input_gets_a_json_error_naming_the_field(client, body, status, field):
    response = post(client, body)
    assert response.status_code == status
    assert field in error_fields(response)


def test_a_body_that_is_not_declared_json_is_refused(client):
    response = post(client, json.dumps(VALID).encode(), content_type="text/plain")
    assert response.status_code == 415
    assert error_fields(response) == ["Content-Type"]


def test_a_batch_over_max_batch_is_refused(registry):
    client = make_client(registry.root, MAX_BATCH=3)
    assert post(client, [VALID] * 3).status_code == 200
    response = post(client, [VALID] * 4)
    assert response.status_code == 422
    assert error_fields(response) == ["body"]
    assert "at most 3" in response.get_json()["details"][0]["message"]


def test_a_body_over_max_content_length_is_refused(registry):
    client = make_client(registry.root, MAX_CONTENT_LENGTH=2_000)
    response = post(client, [VALID] * 30)
    assert response.status_code == 413
    assert error_fields(response) == ["request"]


def test_an_unknown_route_is_a_json_404(client):
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert error_fields(response) == ["request"]


def test_a_wrong_method_is_a_json_405(client):
    response = client.get("/predict")
    assert response.status_code == 405
    assert error_fields(response) == ["request"]


def test_openapi_describes_the_request_from_the_feature_list(client):
    document = client.get("/openapi.json").get_json()
    schema = document["components"]["schemas"]["Transaction"]
    assert sorted(schema["properties"]) == sorted(schema["required"]) == sorted(feature_names())
    assert schema["additionalProperties"] is False
    assert schema["properties"]["hour"]["maximum"] == 23
    responses = document["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "503"} <= responses.keys()


def test_a_newly_promoted_model_is_served_on_the_next_request(client, registry, model_dir, second_model_dir):
    assert post(client, VALID).get_json()["model_version"] == model_dir.name
    registry.promote(registry.register(second_model_dir), "production")
    assert post(client, VALID).get_json()["model_version"] == second_model_dir.name
    assert client.get("/version").get_json()["model_version"] == second_model_dir.name


def test_a_tampered_newly_promoted_model_is_not_swapped_in(client, registry, model_dir, second_model_dir, caplog):
    assert post(client, VALID).status_code == 200
    new = registry.register(second_model_dir)
    registry.promote(new, "production")
    with (registry.folder(new) / artifact.MODEL_FILE).open("ab") as file:
        file.write(b"\0")  # tampered after promotion, before the service loads it
    response = post(client, VALID)
    assert response.status_code == 200
    assert response.get_json()["model_version"] == model_dir.name
    assert client.get("/ready").get_json()["model_version"] == model_dir.name
    assert any("refusing" in record.getMessage() and new in record.getMessage() for record in caplog.records)


def test_a_tampered_first_model_is_never_served(tmp_path, registry):
    broken = Registry(shutil.copytree(registry.root, tmp_path / "broken"))
    (broken.folder(broken.current("production")) / artifact.MODEL_FILE).write_bytes(b"tampered")
    client = make_client(broken.root)
    assert client.get("/ready").status_code == 503
    assert post(client, VALID).status_code == 503


@pytest.fixture
def own_client(tmp_path, own_model_dir):
    """A service whose production model was trained on the other feature list."""
    registry = Registry(tmp_path / "registry")
    registry.promote(registry.register(own_model_dir), "production")
    return make_client(registry.root)


def test_a_model_of_another_feature_list_is_served_with_its_own_schema(own_client, own_features):
    assert own_client.get("/version").get_json()["features"] == ["age", "balance", "is_member"]
    response = post(own_client, {"age": 30, "balance": 1_250.0, "is_member": True})
    assert response.status_code == 200
    assert 0 <= response.get_json()["fraud_probability"] <= 1
    schema = own_client.get("/openapi.json").get_json()["components"]["schemas"]["Transaction"]
    assert sorted(schema["properties"]) == sorted(feature.name for feature in own_features)


def test_a_model_of_another_feature_list_validates_against_its_own_fields(own_client):
    response = post(own_client, VALID)
    assert response.status_code == 422
    assert {"age", "balance", "is_member", "amount", "hour"} <= set(error_fields(response))
    too_young = post(own_client, {"age": 17, "balance": 10.0, "is_member": False})
    assert (too_young.status_code, error_fields(too_young)) == (422, ["age"])
