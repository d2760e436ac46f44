"""The prediction service in process: readiness and lineage, scores, refusals in one JSON shape, hot swaps.

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

from {{ cookiecutter.package_name }} import artifact, service
from {{ cookiecutter.package_name }}.cli import PROG
from {{ cookiecutter.package_name }}.features import FEATURES, TARGET, feature_names
from {{ cookiecutter.package_name }}.registry import Registry

ANSWER = f"{TARGET}_probability"
NUMBERS = [f for f in FEATURES if f.kind != "bool"]
FLOATS = [f for f in FEATURES if f.kind == "float"]
HUGE = sys.float_info.max  # a valid value for any feature with no declared maximum
JSON = "application/json"


def post(client, body, content_type=JSON):
    """POST /predict with a raw or JSON-encoded body."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/predict", data=data, content_type=content_type)


def error_fields(response):
    """Check the one error shape and return the fields it names."""
    body = response.get_json()
    assert response.mimetype == JSON
    assert set(body) == {"error", "details"}
    assert isinstance(body["error"], str) and body["error"]
    assert all(set(detail) == {"field", "message"} for detail in body["details"])
    return [detail["field"] for detail in body["details"]]


def make_client(registry_root, **config):
    """A test client of a service on ``registry_root`` with some settings changed."""
    return service.create_app({"REGISTRY": str(registry_root), "RELOAD_INTERVAL": 0, **config}).test_client()


def serving_registry(root, model_dir) -> Registry:
    """A new registry at ``root`` with ``model_dir`` in production."""
    registry = Registry(root)
    registry.promote(registry.register(model_dir), "production")
    return registry


def refusals(caplog, version):
    """The service's log lines refusing model ``version``."""
    return [r.getMessage() for r in caplog.records if "refusing" in r.getMessage() and version in r.getMessage()]


def scored_by(model_dir, rows: list[dict]) -> np.ndarray:
    """The model file's probabilities of request rows."""
    return artifact.load(model_dir).probability(np.array([[float(row[n]) for n in feature_names()] for row in rows]))


def no_model(registry, monkeypatch):
    """Nothing in production: the stage pointer is gone."""
    (registry.stages / "production").unlink()


def a_tampered_model_file(registry, monkeypatch):
    """The production model's file overwritten."""
    (registry.folder(registry.current("production")) / artifact.MODEL_FILE).write_bytes(b"tampered")


def an_unexpected_load_error(registry, monkeypatch):
    """A load that fails in a way no one planned for."""

    def load(folder):
        raise RuntimeError(f"unexpected trouble in {folder.name}")

    monkeypatch.setattr(artifact, "load", load)


def a_holdout_that_is_a_list(registry, monkeypatch):
    """metrics.json tampered with, so that reading its holdout AUC fails."""
    (registry.folder(registry.current("production")) / artifact.METRICS_FILE).write_text('{"holdout": []}')


@pytest.mark.parametrize(
    "break_it",
    [no_model, a_tampered_model_file, an_unexpected_load_error, a_holdout_that_is_a_list],
    ids=lambda break_it: break_it.__name__.replace("_", " "),
)
def test_without_a_loadable_model_the_worker_stays_up_unready_until_a_good_one_is_promoted(
    registry, second_model_dir, valid_row, monkeypatch, caplog, break_it
):
    first = registry.current("production")
    break_it(registry, monkeypatch)
    client = make_client(registry.root)
    assert client.get("/health").get_json() == {"status": "ok"}
    for response in (client.get("/ready"), client.get("/version"), post(client, valid_row)):
        assert (response.status_code, error_fields(response)) == (503, ["stage"])
    assert bool(refusals(caplog, first)) == (break_it is not no_model)  # a model that fails to load is logged
    monkeypatch.undo()
    registry.promote(registry.register(second_model_dir), "production")
    assert client.get("/ready").get_json() == {"status": "ready", "model_version": second_model_dir.name}


def test_ready_and_version_name_the_model_loaded_at_start_and_its_lineage(registry, model_dir):
    client = make_client(registry.root)
    shutil.rmtree(registry.root)  # nothing left to load from: only a model loaded at creation can answer
    assert client.get("/ready").get_json() == {"status": "ready", "model_version": model_dir.name}
    info = client.get("/version").get_json()
    metadata = artifact.read_json(model_dir / artifact.METADATA_FILE)
    metrics = artifact.read_json(model_dir / artifact.METRICS_FILE)
    assert info["model_version"] == metadata["version"] == model_dir.name
    assert (info["git_commit"], info["git_dirty"]) == (metadata["git_commit"], metadata["git_dirty"])
    assert info["train_data_sha256"] == metadata["train_data"]["sha256"]
    assert info["holdout_auc"] == metrics["holdout"]["auc"]
    assert info["versions"]["sklearn_version"] == metadata["sklearn_version"]
    assert info["features"] == feature_names()
    assert info["service_version"] == package_version(PROG)


def test_predict_scores_a_row_and_a_batch_in_order_as_the_model_file_does(client, model_dir, valid_rows):
    one = post(client, valid_rows[0])
    assert one.status_code == 200
    assert one.get_json()["model_version"] == one.headers["X-Model-Version"] == model_dir.name
    batch = post(client, valid_rows).get_json()[ANSWER]
    assert batch == pytest.approx(scored_by(model_dir, valid_rows), abs=1e-6)
    assert batch[0] == one.get_json()[ANSWER]
    assert batch == [post(client, row).get_json()[ANSWER] for row in valid_rows]


def a_whole_number_for_a_float(row: dict) -> dict:
    """The row with its first float feature that allows one set to a whole number."""
    for f in FLOATS:
        whole = math.floor(row[f.name])
        whole = whole if f.minimum is None else max(whole, math.ceil(f.minimum))
        whole = whole if f.maximum is None else min(whole, math.floor(f.maximum))
        if (f.minimum is None or f.minimum <= whole) and (f.maximum is None or whole <= f.maximum):
            return {**row, f.name: whole}
    pytest.skip("no float feature's declared range holds a whole number")


def every_int_written_as_a_float(row: dict) -> dict:
    """The row with each int feature written as a float: JSON Schema's "integer" includes 1000.0."""
    ints = [f.name for f in FEATURES if f.kind == "int"]
    if not ints:
        pytest.skip("features.py declares no int feature")
    respelled = {**row, **{name: float(row[name]) for name in ints}}
    assert ".0" in json.dumps(respelled)
    return respelled


@pytest.mark.parametrize(
    "respell", [a_whole_number_for_a_float, every_int_written_as_a_float], ids=lambda f: f.__name__.replace("_", " ")
)
def test_predict_accepts_whole_numbers_as_json_schema_spells_them(client, model_dir, valid_row, respell):
    row = respell(valid_row)
    response = post(client, row)
    assert response.status_code == 200
    assert response.get_json()[ANSWER] == pytest.approx(scored_by(model_dir, [row])[0], abs=1e-6)


def bad(body, status: int, field: str, content_type: str = JSON) -> tuple:
    """One bad request: the body, the status it gets, a field its error names, and the Content-Type it is sent with."""
    return body, status, field, content_type


def bad_requests(row: dict) -> dict[str, tuple]:
    """Each kind of bad request, made from a valid row and the declared features."""
    first = FEATURES[0].name
    cases = {
        "body not JSON": bad(b"{not json", 400, "body"),
        "not declared JSON": bad(json.dumps(row).encode(), 415, "Content-Type", "text/plain"),
        "missing field": bad({k: v for k, v in row.items() if k != first}, 422, first),
        "unknown field": bad({**row, "not_a_feature": 1}, 422, "not_a_feature"),
        "null": bad({**row, first: None}, 422, first),
        "empty list": bad([], 422, "body"),
        "bad row in a batch": bad([row, {**row, first: None}], 422, f"1.{first}"),
        "a number instead of an object": bad(7, 422, "body"),
    }
    kinds = {kind: [f for f in FEATURES if f.kind == kind] for kind in ("float", "int", "bool")}
    for f in NUMBERS[:1]:
        cases["string for a number"] = bad({**row, f.name: "1"}, 422, f.name)
    for f in kinds["float"][:1]:
        cases["NaN"] = bad(json.dumps({**row, f.name: float("nan")}).encode(), 422, f.name)
        cases["Infinity"] = bad(json.dumps({**row, f.name: float("inf")}).encode(), 422, f.name)
    for f in kinds["int"][:1]:
        cases["fraction for a whole number"] = bad({**row, f.name: 0.5}, 422, f.name)
        # the next float after a whole number: a fraction too small for pydantic's multiple_of to see
        toward = -math.inf if f.maximum is not None and row[f.name] >= f.maximum else math.inf
        tiny = math.nextafter(row[f.name], toward)
        cases["tiny fraction for a whole number"] = bad({**row, f.name: tiny}, 422, f.name)
    for f in kinds["bool"][:1]:
        cases["number for a yes/no"] = bad({**row, f.name: 1}, 422, f.name)
    for f in [f for f in NUMBERS if f.minimum is not None][:1]:
        cases["below its minimum"] = bad({**row, f.name: f.minimum - 1}, 422, f.name)
    for f in [f for f in NUMBERS if f.maximum is not None][:1]:
        cases["above its maximum"] = bad({**row, f.name: f.maximum + 1}, 422, f.name)
    return cases


@pytest.mark.parametrize("case", bad_requests({f.name: 0 for f in FEATURES}))
def test_bad_input_gets_a_json_error_naming_the_field(client, valid_row, case):
    body, status, field, content_type = bad_requests(valid_row)[case]
    response = post(client, body, content_type)
    assert response.status_code == status
    assert field in error_fields(response)


def test_a_request_holds_at_most_max_batch_rows_and_max_body_bytes_chunked_too(registry, valid_row):
    rows = make_client(registry.root, MAX_BATCH=3)
    assert post(rows, [valid_row] * 3).status_code == 200
    too_many = post(rows, [valid_row] * 4)
    assert (too_many.status_code, error_fields(too_many)) == (422, ["body"])
    too_long = "too many fields or rows: a body holds a list of at most 3 rows"
    assert too_many.get_json()["details"][0]["message"].startswith(too_long)
    # the default limit holds MAX_BATCH of the widest rows, pretty-printed
    widest = {f.name: -sys.float_info.max if f.kind == "float" else valid_row[f.name] for f in FEATURES}
    assert len(json.dumps([widest] * service.MAX_BATCH, indent=4)) < service.MAX_BODY_BYTES
    small = make_client(registry.root, MAX_BODY_BYTES=2_000)
    too_long = post(small, [valid_row] * (2_000 // len(json.dumps(valid_row)) + 2))
    body = json.dumps(valid_row).encode() + b" " * 3_000 + b"garbage"  # valid JSON within the limit, then not
    environ = {"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True}  # what a server sets for chunked
    chunked = small.post("/predict", content_type=JSON, environ_overrides=environ)
    for response in (too_long, chunked):  # refused, not cut off at the limit
        assert (response.status_code, error_fields(response)) == (413, ["body"])


def test_many_problems_get_a_short_answer(client):
    rows = service.MAX_DETAILS + 1  # empty rows: each misses every feature
    capped = post(client, [{}] * rows)
    details = capped.get_json()["details"]
    assert capped.status_code == 422 and len(details) == service.MAX_DETAILS + 1
    more = rows * len(FEATURES) - service.MAX_DETAILS
    assert details[-1] == {"field": "body", "message": f"and {more} more problems"}
    thousands = "{" + ",".join(f'"k{i}":0' for i in range(service.MAX_BODY_BYTES // 12)) + "}"
    megabyte = "{" + ",".join(f'"{i:x}":0' for i in range(131_000)) + "}"  # 413 unless the limit is over 1 MB
    for keys, statuses in ((thousands, {422}), (megabyte, {413, 422})):
        response = post(client, keys.encode())
        assert response.status_code in statuses
        assert error_fields(response) == ["body"]
        assert len(response.get_data()) < 500


def test_http_errors_are_json_not_html_pages(client, valid_row, monkeypatch):
    unknown_route = client.get("/nowhere")
    assert (unknown_route.status_code, error_fields(unknown_route)) == (404, ["request"])
    wrong_method = client.get("/predict")
    assert (wrong_method.status_code, error_fields(wrong_method)) == (405, ["request"])
    assert "POST" in wrong_method.headers["Allow"]
    options = client.options("/predict")
    assert options.status_code == 204 and "POST" in options.headers["Allow"]
    assert "Content-Type" not in options.headers and options.get_data() == b""

    def broken(self, X):
        raise RuntimeError("a bug in the model code")

    monkeypatch.setattr(artifact.LoadedModel, "probability", broken)
    bug = post(client, valid_row)
    assert (bug.status_code, error_fields(bug)) == (500, ["request"])


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
def test_rows_the_model_cannot_score_get_a_422_naming_the_first_few_and_their_extreme_field(
    unbounded_client, valid_row, monkeypatch
):
    monkeypatch.setattr(artifact.LoadedModel, "probability", overflowing)
    name = FLOATS[0].name
    some = post(unbounded_client, [valid_row, {**valid_row, name: HUGE}, valid_row, {**valid_row, name: -HUGE}])
    assert (some.status_code, error_fields(some)) == (422, [f"1.{name}", f"3.{name}"])
    one = post(unbounded_client, {**valid_row, name: HUGE})
    assert (one.status_code, error_fields(one)) == (422, [name])
    many = post(unbounded_client, [{**valid_row, name: HUGE}] * 30)  # the last detail: the rest were not checked
    first_few = [f"{row}.{name}" for row in range(service.MAX_UNSCORABLE)]
    assert (many.status_code, error_fields(many)) == (422, [*first_few, "body"])


@pytest.mark.skipif(not NUMBERS, reason="features.py declares only bool features")
@pytest.mark.parametrize("feature", [f.name for f in NUMBERS] or [None])
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
    schema = document["components"]["schemas"][service.SCHEMA]
    assert sorted(schema["properties"]) == sorted(schema["required"]) == sorted(feature_names())
    assert schema["additionalProperties"] is False
    for f in NUMBERS:
        assert schema["properties"][f.name].get("maximum") == f.maximum
    responses = document["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "503"} <= responses.keys()


@pytest.mark.parametrize("tampered", [False, True], ids=["verified", "tampered after promotion"])
def test_a_newly_promoted_model_is_swapped_in_only_when_it_verifies(
    client, registry, model_dir, second_model_dir, valid_row, caplog, tampered
):
    assert post(client, valid_row).get_json()["model_version"] == model_dir.name
    new = registry.register(second_model_dir)
    registry.promote(new, "production")
    if tampered:  # before the service loads it
        with (registry.folder(new) / artifact.MODEL_FILE).open("ab") as file:
            file.write(b"\0")
    served = model_dir.name if tampered else second_model_dir.name
    response = post(client, valid_row)
    assert (response.status_code, response.get_json()["model_version"]) == (200, served)
    for path in ("/ready", "/version"):
        assert client.get(path).get_json()["model_version"] == served
    assert bool(refusals(caplog, new)) == tampered


def test_a_model_of_another_feature_list_is_served_validated_and_described_by_its_own_fields(
    tmp_path, own_model_dir, own_features, valid_row
):
    client = make_client(serving_registry(tmp_path / "registry", own_model_dir).root)
    names = [feature.name for feature in own_features]
    assert client.get("/version").get_json()["features"] == names
    schema = client.get("/openapi.json").get_json()["components"]["schemas"][service.SCHEMA]
    assert sorted(schema["properties"]) == sorted(names)
    response = post(client, {"age": 30, "balance": 1_250.0, "is_member": True})
    assert response.status_code == 200
    assert 0 <= response.get_json()[ANSWER] <= 1
    foreign = dict(list(valid_row.items())[:3])  # a few fields of this project's rows, so each one can be named
    refused = post(client, foreign)
    assert refused.status_code == 422
    assert set(names) ^ set(foreign) <= set(error_fields(refused))
    too_young = post(client, {"age": 17, "balance": 10.0, "is_member": False})
    assert (too_young.status_code, error_fields(too_young)) == (422, ["age"])
