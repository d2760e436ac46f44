"""The prediction service: a Flask app factory that serves the model a registry stage points at."""

from __future__ import annotations

import json
import logging
import operator
import os
import threading
import time
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import numpy as np
from flask import Flask, Response, jsonify, request
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict
from werkzeug.exceptions import HTTPException

from . import artifact
from .config import layers
from .features import FEATURES, RECORD, TARGET, Feature
from .registry import Registry, RegistryError

ANSWER = f"{TARGET}_probability"  # the response field
MAX_BATCH = 1_000  # rows per request
SCHEMA = RECORD.title().replace(" ", "")  # the request schema's name in /openapi.json
MAX_DETAILS = 20  # an error names at most this many problems, then counts the rest
MAX_FIELD_CHARS = 100  # a field name echoed back is cut to this length
MAX_UNSCORABLE = 5  # rows the model cannot score named in one answer: each costs a few model calls to find
VALUE_BYTES = 48  # a value's bytes in a row: the longest JSON number (24 characters), separators, indentation


def max_body_bytes(features: tuple[Feature, ...], max_batch: int) -> int:
    """The largest body worth reading: ``max_batch`` rows of ``features``, generously spaced."""
    return max_batch * (16 + sum(len(json.dumps(f.name)) + VALUE_BYTES for f in features))


MAX_BODY_BYTES = max_body_bytes(FEATURES, MAX_BATCH)  # larger bodies get 413 (a model of other features: its own)


# an "int" is a JSON number with no fractional part, 1000.0 included, as JSON Schema's "integer" says: validated as
# a float that is a multiple of 1 (exactly so in Serving.score), so the service accepts what its /openapi.json allows
TYPES = {"float": float, "int": float, "bool": bool}


class Refused(HTTPException):
    """A request answered with an error: the status, one line, and the fields at fault."""

    def __init__(self, code: int, message: str, details: list[dict], total: int = 0) -> None:
        """Keep the first MAX_DETAILS details, with short field names, and count the rest (of ``total``)."""
        super().__init__(message)
        self.code, self.message = code, message
        self.details = [{**detail, "field": detail["field"][:MAX_FIELD_CHARS]} for detail in details[:MAX_DETAILS]]
        if (rest := max(total, len(details)) - len(self.details)) > 0:
            self.details.append({"field": "body", "message": f"and {rest} more problems"})


def failing_rows(score, X: np.ndarray, limit: int, start: int = 0) -> list[int]:
    """Up to ``limit`` rows of ``X`` that ``score`` raises on or scores as NaN or infinity, found by bisection."""
    try:
        with np.errstate(all="ignore"):
            return [start + int(i) for i in np.flatnonzero(~np.isfinite(score(X)))[:limit]]
    except (ValueError, ArithmeticError):
        if len(X) == 1:
            return [start]
    middle = len(X) // 2
    found = failing_rows(score, X[:middle], limit, start)
    if len(found) < limit:
        found += failing_rows(score, X[middle:], limit - len(found), start + middle)
    return found


class Serving:
    """A loaded model with the validators of its rows and its /version document."""

    def __init__(self, folder: Path, max_batch: int) -> None:
        """Load and verify a model folder and build everything needed to serve it."""
        self.model = model = artifact.load(folder)
        self.names = [f.name for f in model.features]
        self.values = operator.itemgetter(*self.names)  # a row's values in the model's column order
        fields = {}
        for f in model.features:  # strict types, the declared ranges; an "int" a whole float, shown as an integer
            whole = {"multiple_of": 1, "json_schema_extra": {"type": "integer"}} if f.kind == "int" else {}
            fields[f.name] = Annotated[
                TYPES[f.kind], Field(ge=f.minimum, le=f.maximum, description=f.description, **whole)
            ]
        # a row is validated into a plain dict, not an object: a 100-row batch is a third faster to validate and
        # turn into a matrix. No extra fields; NaN and infinity refused natively by pydantic-core
        row = with_config(ConfigDict(extra="forbid", strict=True, allow_inf_nan=False))(TypedDict(SCHEMA, fields))
        self.one = TypeAdapter(row)
        self.many = TypeAdapter(Annotated[list[row], Field(min_length=1, max_length=max_batch)])
        self.max_batch, self.max_body = max_batch, max_body_bytes(model.features, max_batch)
        self.whole = np.array([column for column, f in enumerate(model.features) if f.kind == "int"], dtype=int)
        # each key of a valid row brings one colon, each value but the row's last one comma, and each row but the
        # batch's last one comma more (numbers hold neither): counting them bounds the fields and rows of a body
        compact = json.dumps({name: 0 for name in self.names}, separators=(",", ":")).encode()
        self.per_row = {b":": compact.count(b":"), b",": compact.count(b",") + 1}
        meta = model.metadata
        self.info = {
            "model_version": model.version,
            "git_commit": meta.get("git_commit"),
            "git_dirty": meta.get("git_dirty"),
            "train_data_sha256": meta["train_data"]["sha256"],
            "holdout_auc": artifact.read_json(folder / artifact.METRICS_FILE)["holdout"]["auc"],
            "versions": {key: meta[key] for key in ("python_version", "sklearn_version", "skops_version")},
            "features": self.names,
        }

    def rows(self, body: bytes) -> tuple[list, bool]:
        """The validated rows of a body, and whether it was a list (a batch)."""
        batch = body.lstrip()[:1] == b"["
        # thousands of unknown keys cost pydantic microseconds each: a body with more separators than its rows can
        # hold is refused unparsed; a few more reach pydantic, for a precise error on a stray field or row
        most = self.max_batch if batch else 1
        if any(body.count(mark) > (most + 1) * count + MAX_DETAILS for mark, count in self.per_row.items()):
            raise self.too_large(batch)
        try:
            rows = (self.many if batch else self.one).validate_json(body)
        except ValidationError as invalid:
            problems = invalid.errors(include_url=False, include_input=False, include_context=False)
            if problems[0]["type"] == "json_invalid":  # then the only problem
                detail = {"field": "body", "message": problems[0]["msg"]}
                raise Refused(400, "the body is not valid JSON", [detail]) from None
            if batch and any(problem["type"] == "too_long" and not problem["loc"] for problem in problems):
                raise self.too_large(batch) from None  # the same words as the count above, whatever the features
            details = [  # each field a dotted path: "3.amount"
                {"field": ".".join(map(str, problem["loc"])) or "body", "message": problem["msg"]}
                for problem in problems[:MAX_DETAILS]
            ]
            raise Refused(422, f"invalid {RECORD}", details, len(problems)) from None
        return (rows if batch else [rows]), batch

    def too_large(self, batch: bool) -> Refused:
        """The 422 for a body with more rows, or fields, than a request may hold."""
        fit = f"a list of at most {self.max_batch:,} rows" if batch else f"one {RECORD}"
        message = f"too many fields or rows: a body holds {fit} of {len(self.names)} fields"
        return Refused(422, f"invalid {RECORD}", [{"field": "body", "message": message}])

    def matrix(self, rows: list[dict]) -> np.ndarray:
        """The validated rows as a float matrix, one column per feature in the model's order."""
        return np.array([self.values(row) for row in rows], dtype=float).reshape(len(rows), len(self.names))

    def score(self, rows: list, batch: bool) -> np.ndarray:
        """The probability of each validated row (the one place a batch is scored), or Refused: see unscorable."""
        X = self.matrix(rows)
        fractions = np.argwhere(X[:, self.whole] % 1)  # pydantic's multiple_of lets a tiny one (1e-10) through
        if len(fractions):
            named = [(row, self.names[self.whole[column]]) for row, column in fractions[:MAX_DETAILS]]
            fields = [f"{row}.{name}" if batch else name for row, name in named]
            details = [{"field": field, "message": "Input should be a multiple of 1"} for field in fields]
            raise Refused(422, f"invalid {RECORD}", details, len(fractions))
        try:
            with np.errstate(all="ignore"):
                probabilities = self.model.probability(X)
            if np.isfinite(probabilities).all():
                return probabilities
        except (ValueError, ArithmeticError):
            pass  # which rows: found below, by bisection
        raise unscorable(self.model.probability, X, self.names, batch)


def unscorable(score, X: np.ndarray, names: list[str], batch: bool) -> Refused:
    """A 422 naming the first rows ``score`` fails on and, in each, the largest values it cannot score."""
    details, failing = [], failing_rows(score, X, MAX_UNSCORABLE)
    for row in failing:
        # trial k is the row with its k + 1 largest values set to 0: the first trial the model scores names them
        order = np.argsort(-np.abs(X[row]))
        trials = np.tile(X[row], (len(order), 1))
        for k, column in enumerate(order):
            trials[k:, column] = 0.0
        still_failing = set(failing_rows(score, trials, len(order)))
        first = next((k for k in range(len(order)) if k not in still_failing), None)
        for column in [] if first is None else order[: first + 1]:
            message = f"the model cannot score {X[row, column].item()!r}: send a value in the range it was trained on"
            details.append({"field": f"{row}.{names[column]}" if batch else names[column], "message": message})
        if first is None:
            details.append({"field": str(row) if batch else "body", "message": "the model cannot score this row"})
    if len(failing) == MAX_UNSCORABLE and failing[-1] < len(X) - 1:
        details.append({"field": "body", "message": f"the rows after {failing[-1]} were not all checked"})
    details = details or [{"field": "body", "message": "the model cannot score these rows"}]
    return Refused(422, f"the model cannot score this {RECORD}", details)


class ModelSlot:
    """Holds the serving model; swaps in a newly promoted one when the stage pointer changes."""

    def __init__(self, registry: Registry, stage: str, interval: float, max_batch: int, log: logging.Logger) -> None:
        """Watch ``stage`` of ``registry``, checking its pointer every ``interval`` seconds."""
        self.registry, self.stage, self.interval, self.max_batch, self.log = registry, stage, interval, max_batch, log
        self.serving: Serving | None = None
        self.pointer: str | None = None
        self.checked = 0.0
        self.lock = threading.Lock()

    def get(self) -> Serving | None:
        """The current model, loading the version the pointer names when it changes (checked once per interval)."""
        due = self.serving is None or time.monotonic() - self.checked >= self.interval
        # while a model is served, other threads keep using it during a check or a swap; until the first one
        # is loaded, they wait for the thread loading it rather than answer 503
        if due and self.lock.acquire(blocking=self.serving is None):
            try:
                self._refresh()
            finally:
                self.lock.release()
        return self.serving

    def _refresh(self) -> None:
        """Load the version the pointer names, if it changed; a pointer or model that fails is logged, never served."""
        self.checked = time.monotonic()
        try:
            pointer = self.registry.current(self.stage)
        except Exception as error:  # a broken registry leaves the worker up, answering 503 on /ready
            self.log.error("cannot read the %s pointer: %s", self.stage, error)
            return
        if pointer is None or pointer == self.pointer:
            return
        self.pointer = pointer
        try:
            self.serving = Serving(self.registry.folder(pointer), self.max_batch)
            self.log.info("serving %s model %s", self.stage, pointer)
        except Exception as error:  # whatever a tampered folder raises, it is refused and never served
            unexpected = not isinstance(error, (artifact.ArtifactError, RegistryError))  # a traceback for those only
            message = "refusing %s model %s, keeping the current one: %s"
            self.log.error(message, self.stage, pointer, error, exc_info=unexpected)


def openapi_document(app: Flask, row: dict) -> dict:
    """The OpenAPI 3.1 document of the service's routes, ``row`` the request schema."""
    ref = {"$ref": f"#/components/schemas/{SCHEMA}"}
    body = {"oneOf": [ref, {"type": "array", "items": ref, "minItems": 1, "maxItems": app.config["MAX_BATCH"]}]}
    answers = {
        "200": f"{ANSWER} per row and the model version",
        "400": "body is not JSON",
        "413": "body too large",
        "415": "not application/json",
        "422": "invalid rows, or rows the model cannot score",
        "503": "no model",
    }
    predict = {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}
    responses = {code: {"description": text} for code, text in answers.items()}
    paths = {"/predict": {"post": {**predict, "responses": responses}}}
    gets = {"/health": "alive", "/ready": "a verified model is loaded", "/version": "model lineage"}
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and rule.endpoint not in ("openapi", "static"):  # a layer may add its own routes
            text = gets.get(rule.rule) or (app.view_functions[rule.endpoint].__doc__ or "").strip().rstrip(".")
            paths[rule.rule] = {"get": {"responses": {"200": {"description": text}}}}
    info = {"title": "{{ cookiecutter.project_slug }}", "version": "1"}
    return {"openapi": "3.1.0", "info": info, "paths": paths, "components": {"schemas": {SCHEMA: row}}}


class App(Flask):
    """Flask, answering OPTIONS with 204 No Content and the Allow header rather than an empty HTML page."""

    def make_default_options_response(self) -> Response:
        """The 204 answer to OPTIONS, with the methods the path allows."""
        response = super().make_default_options_response()
        response.status_code = 204
        del response.headers["Content-Type"]
        return response


def create_app(test_config: dict | None = None) -> Flask:
    """Create the service, its model loaded (or a 503 until one loads); ``test_config`` overrides the defaults."""
    app = App(__name__)
    app.config.from_mapping(
        REGISTRY=os.environ.get("MODEL_REGISTRY", "registry"),
        STAGE=os.environ.get("MODEL_STAGE", "production"),
        MAX_BATCH=MAX_BATCH,
        MAX_BODY_BYTES=None,  # None: MAX_BATCH rows of the served model's features (MAX_BODY_BYTES for FEATURES)
        RELOAD_INTERVAL=0.5,
    )
    app.config.update(test_config or {})
    app.logger.setLevel(logging.INFO)  # every model swap and refusal shows in the server's log
    config = app.config
    registry = Registry(Path(config["REGISTRY"]))
    slot = ModelSlot(registry, config["STAGE"], config["RELOAD_INTERVAL"], config["MAX_BATCH"], app.logger)
    # a layer on the hello world (the production loop) adds X-Request-ID, the prediction log, a shadow, /metrics
    recorders = [layer.install(app, slot) for layer in layers()]
    slot.get()  # before the first request: a gunicorn worker accepts with its model loaded

    def served() -> Serving:
        """The model being served, or a 503 naming the stage that has none."""
        if (serving := slot.get()) is None:
            raise Refused(503, "no verified model is loaded", [{"field": "stage", "message": slot.stage}])
        return serving

    @app.get("/health")
    def health():
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/ready")
    def ready():
        """200 only when a verified model is loaded."""
        return {"status": "ready", "model_version": served().model.version}

    @app.get("/version")
    def version():
        """Lineage of the model being served."""
        return {**served().info, "service_version": package_version("{{ cookiecutter.project_slug }}")}

    @app.post("/predict")
    def predict():
        """Score one row object or a list of them."""
        serving = served()
        if request.mimetype != "application/json":
            raise Refused(415, "the body must be JSON", [{"field": "Content-Type", "message": "use application/json"}])
        rows, batch = serving.rows(read_body(config["MAX_BODY_BYTES"] or serving.max_body))
        probabilities = serving.score(rows, batch).round(6).tolist()
        for recorder in recorders:
            recorder.record(serving.model, serving.names, rows, probabilities)
        answer = {"model_version": serving.model.version, ANSWER: probabilities if batch else probabilities[0]}
        return jsonify(answer), {"X-Model-Version": serving.model.version}

    @app.get("/openapi.json")
    def openapi():
        """The OpenAPI document of this service, generated from the feature list."""
        serving = slot.get()
        return openapi_document(app, serving.one.json_schema() if serving else {"type": "object"})

    @app.errorhandler(HTTPException)
    def refused(error: HTTPException):
        """Every error in one JSON shape, never an HTML page: {"error": ..., "details": [{"field", "message"}]}."""
        if isinstance(error, Refused):
            return jsonify(error=error.message, details=error.details), error.code
        response = jsonify(error=error.name.lower(), details=[{"field": "request", "message": error.description}])
        if allowed := getattr(error, "valid_methods", None):  # a 405 keeps its Allow header
            response.headers["Allow"] = ", ".join(allowed)
        return response, error.code or 500

    return app


def read_body(limit: int) -> bytes:
    """The request body; 413 past ``limit`` bytes, for a chunked body (no Content-Length) too."""
    if (request.content_length or 0) <= limit:
        try:
            body = request.stream.read(limit + 1)
        except Exception as failure:  # the server's own error for a malformed chunked body, or the client went away
            raise Refused(400, "the body could not be read", [{"field": "body", "message": str(failure)}]) from None
        if len(body) <= limit:
            return body
    raise Refused(413, "the body is too large", [{"field": "body", "message": f"at most {limit:,} bytes"}])
