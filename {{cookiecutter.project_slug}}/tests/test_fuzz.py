"""Fuzzing the service: no generated request gets a 5xx, every 4xx is the JSON error shape, valid rows are scored.

Requests are generated from features.py: as declared, and with no bound on any number (where a valid row can be
too extreme for the model: it then gets a 422 naming its fields, never a 5xx). The normal test run sends a few
hundred requests of each through Flask's test client; `tox -e fuzz` sets FUZZ_EXAMPLES=10000 and sends that many
through the test client and as many again to the service running under gunicorn with the shipped config (set
FUZZ_EXAMPLES yourself for a shorter run of both).
"""

import http.client
import json
import math
import os
import string
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.features import FEATURES, TARGET, Feature
from {{ cookiecutter.package_name }}.registry import Registry
from {{ cookiecutter.package_name }}.service import MAX_BODY_BYTES, create_app
from {{ cookiecutter.package_name }}.staging import free_port, wait_until_ready

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FULL = EXAMPLES >= 10_000
LIVE = "FUZZ_EXAMPLES" in os.environ  # the normal test run (and the pipeline's test stage) skip starting gunicorn
ANSWER = f"{TARGET}_probability"


# --- request bodies --------------------------------------------------------------------------------------------
def valid_value(feature: Feature) -> st.SearchStrategy:
    """A value the schema accepts for one feature: in its range; a whole number is fine for a float, and a whole
    number written as a float (``5.0``) for an int."""
    if feature.kind == "bool":
        return st.booleans()
    low = -(2**53) if feature.minimum is None else math.ceil(feature.minimum)
    high = 2**53 if feature.maximum is None else math.floor(feature.maximum)
    wholes = st.integers(low, high) if low <= high else st.nothing()  # a range like 0.04 to 0.18 holds none
    if feature.kind == "int":
        return wholes | wholes.map(float)
    return st.floats(feature.minimum, feature.maximum, allow_nan=False, allow_infinity=False) | wholes


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),  # floats include NaN and infinity
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def valid_rows(features: tuple[Feature, ...]) -> st.SearchStrategy:
    """Rows the schema accepts for a feature list."""
    return st.fixed_dictionaries({f.name: valid_value(f) for f in features})


@st.composite
def broken_row(draw, features: tuple[Feature, ...]) -> dict:
    """A valid row with one thing wrong: a field dropped, a field added, or a value of any JSON type."""
    row = dict(draw(valid_rows(features)))
    names = st.sampled_from([f.name for f in features])
    change = draw(st.sampled_from(["drop", "add", "replace"]))
    if change == "drop":
        del row[draw(names)]
    elif change == "add":
        row[draw(st.text(max_size=20))] = draw(JSON_VALUES)
    else:
        row[draw(names)] = draw(JSON_VALUES)
    return row


def encode(value: object, ascii_only: bool) -> bytes:
    """JSON text of a value (NaN and Infinity written as Python does); lone surrogates make invalid UTF-8."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def json_body(values: st.SearchStrategy) -> st.SearchStrategy:
    """The values as JSON bodies, escaped or with raw unicode."""
    return st.builds(encode, values, st.booleans())


@st.composite
def deep_nesting(draw, features: tuple[Feature, ...]) -> bytes:
    """Lists or objects nested thousands deep, alone or inside a row."""
    depth = draw(st.integers(1, 5_000))
    nested = b"[" * depth + b"]" * depth if draw(st.booleans()) else b'{"a":' * depth + b"1" + b"}" * depth
    if draw(st.booleans()):
        return b'{"' + draw(st.sampled_from([f.name for f in features])).encode() + b'": ' + nested + b"}"
    return nested


@st.composite
def huge_number(draw, features: tuple[Feature, ...]) -> bytes:
    """A row with a number far beyond any float or 64-bit integer (or far below)."""
    row = encode(draw(valid_rows(features)), True)
    digits = "9" * draw(st.integers(20, 6_000))
    number = draw(st.sampled_from([digits, "-" + digits, "1e999999", "-1e999999", "1e-999999", digits + ".5e400"]))
    name = draw(st.sampled_from([f.name for f in features]))
    return row.replace(f'"{name}": '.encode(), f'"{name}": {number}, "_": '.encode(), 1)


def valid_bodies(features: tuple[Feature, ...]) -> st.SearchStrategy:
    """One valid row or a short list of them, as JSON."""
    return json_body(valid_rows(features) | st.lists(valid_rows(features), min_size=1, max_size=5))


def bad_bodies(features: tuple[Feature, ...]) -> st.SearchStrategy:
    """Bodies with something wrong: broken rows, any JSON, bytes, bad UTF-8, deep nesting, huge numbers, too long."""
    rows = broken_row(features) | st.lists(broken_row(features) | valid_rows(features), min_size=1, max_size=5)
    return st.one_of(
        json_body(rows),
        json_body(JSON_VALUES),
        st.binary(max_size=300),
        st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
        deep_nesting(features),
        huge_number(features),
        st.just(b" " * MAX_BODY_BYTES + b"{}"),  # over the size limit
    )


CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/json-patch+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ]
) | st.text(string.ascii_letters + string.digits + "/;=+-. ", max_size=40)
PATHS = st.sampled_from(["/predict", "/health", "/ready", "/version", "/openapi.json", "/"]) | st.text(
    string.ascii_letters + string.digits + "-._~/%", min_size=1, max_size=30
).map(lambda path: "/" + path)
METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])


@st.composite
def fuzz_request(draw, live: bool, features: tuple[Feature, ...]) -> tuple[str, str, str, bytes, bool]:
    """(method, path, content type, body, must be scored): mostly POST /predict, some other routes and methods."""
    kind = draw(st.sampled_from(["valid", "bad", "bad", "bad", "other"]))
    if kind == "valid":
        return "POST", "/predict", "application/json", draw(valid_bodies(features)), True
    if kind == "other":
        return draw(METHODS), draw(PATHS), draw(CONTENT_TYPES), draw(st.binary(max_size=50)), False
    bad = bad_bodies(features)
    body = draw(bad.filter(lambda body: len(body) <= MAX_BODY_BYTES) if live else bad)
    content_type = draw(st.just("application/json") | st.just("application/json") | CONTENT_TYPES)
    return "POST", "/predict", content_type, body, False


# --- checking one answer ---------------------------------------------------------------------------------------
def check_answer(request: tuple, status: int, content_type: str, body: bytes, unbounded: bool) -> None:
    """No 5xx; each 4xx is the one JSON error shape; a valid body gets a probability per row.

    With ``unbounded`` features a valid row may be beyond what the model can score: a 422 naming its fields.
    """
    method, path, _, sent, must_succeed = request
    assert status < 500, f"{method} {path} got {status}: {body[:300]!r}"
    if method == "HEAD":  # the answer of the same GET, without its body
        return
    if body:
        assert content_type == "application/json", f"{status} answered with {content_type}"
    if status >= 400:
        assert content_type == "application/json", f"{status} answered with {content_type}"
        error = json.loads(body)
        assert set(error) == {"error", "details"}, error
        assert isinstance(error["error"], str) and isinstance(error["details"], list), error
        for detail in error["details"]:
            assert isinstance(detail, dict) and set(detail) == {"field", "message"}, error
    if must_succeed and unbounded and status == 422:
        rows = json.loads(sent)
        for detail in json.loads(body)["details"]:
            if detail["field"] == "body" or (isinstance(rows, list) and "." not in detail["field"]):
                continue  # the whole body or a whole row: "the rows after N were not all checked", no field to blame
            index, name = detail["field"].split(".", 1) if isinstance(rows, list) else (None, detail["field"])
            assert name in (rows if index is None else rows[int(index)]), detail
    elif must_succeed:
        assert status == 200, f"a valid body got {status}: {body[:300]!r}"
        rows = json.loads(sent)
        scores = json.loads(body)[ANSWER]
        scores = scores if isinstance(rows, list) else [scores]
        assert len(scores) == (len(rows) if isinstance(rows, list) else 1)
        assert all(0 <= score <= 1 for score in scores)


def run_fuzz(send, examples: int, live: bool, features: tuple[Feature, ...] = FEATURES) -> Counter:
    """Send ``examples`` generated requests for ``features`` through ``send``; return how many got each status."""
    unbounded = any(f.kind != "bool" and (f.minimum is None or f.maximum is None) for f in features)
    statuses: Counter = Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=not FULL,  # the short run is the same every time; the full run explores
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=fuzz_request(live, features))
    def one_request(request: tuple) -> None:
        status, content_type, body = send(*request[:4])
        statuses[status] += 1
        check_answer(request, status, content_type, body, unbounded)

    one_request()
    return statuses


# --- the two transports ----------------------------------------------------------------------------------------
def client_sender(client):
    """A send function for run_fuzz through Flask's test client."""

    def send(method: str, path: str, content_type: str, body: bytes) -> tuple[int, str, bytes]:
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.open(path, method=method, data=body, headers=headers)
        return response.status_code, response.mimetype, response.get_data()

    return send


@pytest.mark.slow
def test_no_generated_request_gets_a_5xx_or_an_error_of_another_shape(client):
    statuses = run_fuzz(client_sender(client), EXAMPLES, live=False)
    print(f"fuzz, Flask test client: {statuses.total()} requests, by status {dict(sorted(statuses.items()))}")
    assert statuses.total() >= EXAMPLES
    assert {200, 400, 415, 422} <= statuses.keys()


@pytest.mark.slow
def test_no_request_to_a_model_of_unbounded_features_gets_a_5xx(tmp_path, unbounded_model_dir, unbounded_features):
    registry = Registry(tmp_path / "registry")
    registry.promote(registry.register(unbounded_model_dir), "production")
    client = create_app({"REGISTRY": str(registry.root)}).test_client()
    statuses = run_fuzz(client_sender(client), EXAMPLES // 2, live=False, features=unbounded_features)
    print(f"fuzz, unbounded features: {statuses.total()} requests, by status {dict(sorted(statuses.items()))}")
    assert statuses.total() >= EXAMPLES // 2
    assert {200, 422} <= statuses.keys()


@pytest.fixture(scope="module")
def live_service(production_registry):
    """The service under gunicorn with the shipped config, on a free 127.0.0.1 port, until the module ends."""
    port = free_port()
    package = "{{ cookiecutter.package_name }}"
    command = [sys.executable, "-m", "gunicorn", "--config", str(Path(__file__).parents[1] / "gunicorn.conf.py")]
    command += ["--bind", f"127.0.0.1:{port}", f"{package}.service:create_app()"]
    env = {**os.environ, "MODEL_REGISTRY": str(production_registry), "MODEL_STAGE": "production"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", server, seconds=60)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=15)


@pytest.mark.skipif(not LIVE, reason="starts gunicorn: set FUZZ_EXAMPLES to run it (`tox -e fuzz` sets 10000)")
def test_the_service_under_gunicorn_survives_the_same_requests(live_service):
    def send(method: str, path: str, content_type: str, body: bytes) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", live_service, timeout=10)
        try:
            connection.request(method, path, body=body, headers={"Content-Type": content_type} if content_type else {})
            response = connection.getresponse()
            return response.status, response.headers.get_content_type(), response.read()
        finally:
            connection.close()

    statuses = run_fuzz(send, EXAMPLES, live=True)
    print(f"fuzz, gunicorn: {statuses.total()} requests, by status {dict(sorted(statuses.items()))}")
    assert statuses.total() >= EXAMPLES
    assert 200 in statuses and 422 in statuses
