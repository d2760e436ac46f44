"""Prometheus metrics at /metrics: requests, latency, scores, the models served, swaps and prediction log drops."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import numpy as np
from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

PREFIX = "{{ cookiecutter.package_name }}"
# prometheus-client chooses where values live once, when first imported: with this variable set (gunicorn.conf.py
# sets it), every process writes its values to files in that folder and a scrape adds up all the processes
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCORE_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)


def observe_all(histogram: Histogram, values: list[float]) -> None:
    """``histogram.observe(value)`` for every value, with one increment per bucket instead of two per value.

    prometheus-client has no bulk observe, and in multiprocess mode each increment is a locked write to a shared
    file: 200 of them for a 100-row batch cost more than scoring it. This reads the histogram's internals (its
    bounds, sum and buckets); tests/production/test_metrics.py checks it against observe() one by one.
    """
    bounds = histogram._upper_bounds  # noqa: SLF001 - see above
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    histogram._sum.inc(float(np.sum(values)))  # noqa: SLF001
    for bucket, count in zip(histogram._buckets, counts.tolist(), strict=True):  # noqa: SLF001
        if count:
            bucket.inc(count)


class Metrics:
    """The service's metrics, in a registry of their own, or in the multiprocess files under gunicorn."""

    def __init__(self) -> None:
        """Create every metric, with the label values known in advance at zero."""
        self.registry = None if MULTIPROCESS else CollectorRegistry()
        metric = {"registry": self.registry}
        self.requests = Counter(
            f"{PREFIX}_requests", "Requests by endpoint and status.", ["endpoint", "status"], **metric
        )
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Seconds from reading a request to its response, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            **metric,
        )
        self.scores = Histogram(
            f"{PREFIX}_score", "Scores answered, by model version.", ["model_version"], buckets=SCORE_BUCKETS, **metric
        )
        self.models = Gauge(
            f"{PREFIX}_model_info",
            "1 for every model version a live worker serves (role serving) or scores in the shadow (role shadow).",
            ["role", "model_version"],
            multiprocess_mode="livemax",
            **metric,
        )
        self.swaps = Counter(f"{PREFIX}_model_swaps", "Model changes, counted by each worker.", ["role"], **metric)
        self.log_written = Counter(f"{PREFIX}_prediction_log_written", "Rows written to the prediction log.", **metric)
        self.log_dropped = Counter(
            f"{PREFIX}_prediction_log_dropped", "Rows not logged, by reason.", ["reason"], **metric
        )
        self.shadow_failures = Counter(
            f"{PREFIX}_shadow_failures", "Shadow model failures (ignored), by stage.", ["stage"], **metric
        )
        for reason in ("queue_full", "write_error"):
            self.log_dropped.labels(reason)
        for stage in ("load", "score"):
            self.shadow_failures.labels(stage)
        self._versions: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def served(self, role: str, version: str | None) -> None:
        """Note the version a role (serving, shadow) has now; a change from one version to another is a swap."""
        if self._versions.get(role) == version:
            return
        with self._lock:
            previous = self._versions.get(role)
            if previous == version:
                return
            if previous is not None:
                self.models.labels(role, previous).set(0)
                if version is not None:
                    self.swaps.labels(role).inc()
            if version is not None:
                self.models.labels(role, version).set(1)
            self._versions[role] = version

    def observe_scores(self, version: str, scores: list[float]) -> None:
        """Add a request's scores to the score histogram."""
        observe_all(self.scores.labels(version), scores)

    def count_log_rows(self, outcome: str, rows: int) -> None:
        """Count rows the prediction log wrote ("written") or dropped ("queue_full", "write_error")."""
        if outcome == "written":
            self.log_written.inc(rows)
        else:
            self.log_dropped.labels(outcome).inc(rows)

    def count_shadow_failure(self, stage: str) -> None:
        """Count a shadow model that failed to load or to score."""
        self.shadow_failures.labels(stage).inc()

    def scrape(self) -> bytes:
        """The metrics in the Prometheus text format, added up over every process in multiprocess mode."""
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)


def instrument(app: Flask, metrics: Metrics, serving: Callable[[], str | None]) -> None:
    """Count and time every request, follow the served version (``serving()``), and answer GET /metrics."""

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        if "started" in g:
            metrics.latency.labels(endpoint).observe(time.perf_counter() - g.started)
        metrics.served("serving", serving())
        return response

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        """Prometheus metrics of every worker."""
        return Response(metrics.scrape(), content_type=CONTENT_TYPE_LATEST)
