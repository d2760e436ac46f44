"""The prediction service: a Flask app factory that serves the model a registry stage points at."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from . import artifact
from .config import layers
from .features import FEATURES, TARGET
from .registry import Registry
from .validation import Refused, Validator, max_body_bytes, openapi_document

ANSWER = f"{TARGET}_probability"  # the response field
MAX_BATCH = 1_000  # rows per request
MAX_BODY_BYTES = max_body_bytes(FEATURES, MAX_BATCH)  # larger bodies get 413 (a model of other features: its own)


@dataclass(frozen=True)
class Serving:
    """A loaded model with the validator and /version document derived from it."""

    model: artifact.LoadedModel
    validator: Validator
    names: list[str]
    info: dict

    def matrix(self, rows: list) -> np.ndarray:
        """The validated rows as a float matrix, one column per feature in the model's order."""
        values = (getattr(row, name) for row in rows for name in self.names)
        return np.fromiter(values, dtype=float, count=len(rows) * len(self.names)).reshape(len(rows), -1)

    def score(self, rows: list, batch: bool) -> np.ndarray:
        """The probability of each validated row: the one place a batch is scored.

        A row the model raises on or scores as NaN or infinity (an extreme value of a feature with no declared
        bound) raises Refused, naming the rows and their extreme fields.
        """
        X = self.matrix(rows)
        try:
            with np.errstate(all="ignore"):
                probabilities = self.model.probability(X)
            if np.isfinite(probabilities).all():
                return probabilities
        except (ValueError, ArithmeticError):
            pass  # which rows: found below, by bisection
        raise self.validator.unscorable(self.model.probability, X, batch)


def prepare(folder: Path, max_batch: int) -> Serving:
    """Load and verify a model folder and build everything needed to serve it."""
    model = artifact.load(folder)
    metrics = artifact.read_json(folder / artifact.METRICS_FILE)
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
    return Serving(model, Validator(model.features, max_batch), info["features"], info)


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
        except Exception as error:  # a broken registry leaves the worker up, answering 503 on /ready
            self.log.error("cannot read the %s pointer: %s", self.stage, error)
            return
        if pointer is None or pointer == self._pointer:
            return
        self._pointer = pointer
        try:
            self.serving = prepare(self.registry.folder(pointer), self.max_batch)
            self.log.info("serving %s model %s", self.stage, pointer)
        except Exception as error:  # whatever a tampered folder raises, it is refused and never served
            unexpected = not isinstance(error, artifact.ArtifactError)  # a traceback in the log for those only
            message = "refusing %s model %s, keeping the current one: %s"
            self.log.error(message, self.stage, pointer, error, exc_info=unexpected)


class App(Flask):
    """Flask, with an automatic OPTIONS answer that is not an empty HTML page: 204 and the Allow header."""

    def make_default_options_response(self) -> Response:
        """Answer OPTIONS with 204 No Content and the methods the path allows."""
        response = super().make_default_options_response()
        response.status_code = 204
        del response.headers["Content-Type"]
        return response


def create_app(test_config: dict | None = None) -> Flask:
    """Create the prediction service; ``test_config`` overrides the defaults below.

    The model loads here, so a gunicorn worker starts accepting with its model loaded and /ready answers 200;
    a model that fails to load leaves the worker up, answering 503, until a good one is promoted.
    """
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
    slot = ModelSlot(
        Registry(Path(app.config["REGISTRY"])),
        app.config["STAGE"],
        app.config["RELOAD_INTERVAL"],
        app.config["MAX_BATCH"],
        app.logger,
    )
    app.extensions["model_slot"] = slot
    # a layer on the hello world (the production loop) adds X-Request-ID, the prediction log, a shadow, /metrics
    recorders = [layer.install(app, slot) for layer in layers()]
    slot.get()

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
        try:
            rows, batch = serving.validator.rows(read_body(app.config["MAX_BODY_BYTES"] or serving.validator.max_body))
            probabilities = serving.score(rows, batch).round(6).tolist()
        except Refused as refused:
            return error(refused.status, refused.message, refused.details)
        for recorder in recorders:
            recorder.record(serving.model, serving.names, rows, probabilities)
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
        schema = serving.validator.one.json_schema() if serving else {"type": "object"}
        gets = {
            rule.rule: app.view_functions[rule.endpoint].__doc__ or ""
            for rule in app.url_map.iter_rules()
            if "GET" in rule.methods and rule.endpoint not in ("openapi", "static")
        }  # the routes this app has: a layer may add its own
        return openapi_document(schema, app.config["MAX_BATCH"], ANSWER, "{{ cookiecutter.project_slug }}", gets)

    @app.errorhandler(HTTPException)
    def http_error(exception: HTTPException):
        """Every HTTP error is a JSON body, never an HTML page (a 405 keeps its Allow header)."""
        response, status = error(
            exception.code or 500, exception.name.lower(), [{"field": "request", "message": exception.description}]
        )
        allowed = getattr(exception, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response, status

    return app


def read_body(limit: int) -> bytes:
    """The request body; 413 past ``limit`` bytes, for a chunked body (no Content-Length) too."""
    if (request.content_length or 0) > limit:
        raise Refused(413, "the body is too large", [{"field": "body", "message": f"at most {limit:,} bytes"}])
    try:
        body = request.stream.read(limit + 1)
    except Exception as failure:  # the server's own error for a malformed chunked body, or the client went away
        raise Refused(400, "the body could not be read", [{"field": "body", "message": str(failure)}]) from None
    if len(body) > limit:
        raise Refused(413, "the body is too large", [{"field": "body", "message": f"at most {limit:,} bytes"}])
    return body


def error(status: int, message: str, details: list[dict]) -> tuple[Response, int]:
    """The one error shape: {"error": ..., "details": [{"field": ..., "message": ...}]}."""
    return jsonify(error=message, details=details), status
