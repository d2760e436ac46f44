"""/metrics: Prometheus text that prometheus-client's parser reads, counting what the service did."""

import json

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.production.metrics import PREFIX, SCORE_BUCKETS, observe_all
from {{ cookiecutter.package_name }}.service import ANSWER


def post(client, body):
    """POST /predict with a JSON body."""
    return client.post("/predict", data=json.dumps(body), content_type="application/json")


def test_metrics_is_prometheus_text_with_every_metric_of_the_reference(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    families = {family.name for family in text_string_to_metric_families(response.get_data(as_text=True))}
    expected = {
        "requests",
        "request_duration_seconds",
        "score",
        "model_info",
        "model_swaps",
        "prediction_log_written",
        "prediction_log_dropped",
        "shadow_failures",
    }
    assert {f"{PREFIX}_{name}" for name in expected} <= families


def test_requests_are_counted_by_endpoint_and_status(client, valid_row, metric):
    post(client, valid_row)
    post(client, [valid_row, valid_row])
    post(client, {"colour": "red"})
    client.get("/nowhere")
    assert metric(client, "requests_total", endpoint="/predict", status="200") == 2
    assert metric(client, "requests_total", endpoint="/predict", status="422") == 1
    assert metric(client, "requests_total", endpoint="unmatched", status="404") == 1


def test_latency_is_a_histogram_per_endpoint(client, valid_row, metric):
    for _ in range(3):
        post(client, valid_row)
    assert metric(client, "request_duration_seconds_count", endpoint="/predict") == 3
    assert metric(client, "request_duration_seconds_bucket", endpoint="/predict", le="+Inf") == 3
    assert metric(client, "request_duration_seconds_sum", endpoint="/predict") > 0


def test_every_answered_score_goes_into_the_score_histogram_of_its_model(client, registry, valid_rows, metric):
    scores = post(client, valid_rows).get_json()[ANSWER]
    version = registry.current("production")
    assert metric(client, "score_count", model_version=version) == len(valid_rows)
    assert metric(client, "score_sum", model_version=version) == pytest.approx(sum(scores))
    below_half = sum(score <= 0.5 for score in scores)
    assert metric(client, "score_bucket", model_version=version, le="0.5") == below_half


def test_a_batch_of_scores_counts_as_observing_each_score_one_by_one():
    values = [0.0, 0.001, 0.0011, 0.5, 0.5000001, 1.0, 0.3, *np.random.default_rng(0).random(200).tolist()]
    samples = []
    for observe in (lambda h: [h.observe(value) for value in values], lambda h: observe_all(h, values)):
        registry = CollectorRegistry()
        observe(Histogram("score", "scores", buckets=SCORE_BUCKETS, registry=registry))
        families = text_string_to_metric_families(generate_latest(registry).decode())
        (histogram,) = (family for family in families if family.name == "score")
        samples.append({(s.name, s.labels.get("le")): s.value for s in histogram.samples})
    one_by_one, at_once = samples
    assert at_once.pop(("score_sum", None)) == pytest.approx(one_by_one.pop(("score_sum", None)))  # summed in order
    assert at_once == one_by_one and at_once[("score_count", None)] == len(values)


def test_the_served_version_is_named_and_a_swap_is_counted(client, registry, second_model_dir, valid_row, metric):
    first = registry.current("production")
    post(client, valid_row)
    assert metric(client, "model_info", role="serving", model_version=first) == 1
    assert metric(client, "model_swaps_total", role="serving") is None  # no swap yet: no sample
    registry.promote(registry.register(second_model_dir), "production")
    post(client, valid_row)
    assert metric(client, "model_info", role="serving", model_version=second_model_dir.name) == 1
    assert metric(client, "model_info", role="serving", model_version=first) == 0
    assert metric(client, "model_swaps_total", role="serving") == 1


def test_log_drops_and_shadow_failures_start_at_zero(client, metric):
    for reason in ("queue_full", "write_error"):
        assert metric(client, "prediction_log_dropped_total", reason=reason) == 0
    for stage in ("load", "score"):
        assert metric(client, "shadow_failures_total", stage=stage) == 0
