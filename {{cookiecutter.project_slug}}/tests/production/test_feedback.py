"""Feedback: the prediction log and the labels are read strictly, then joined by request id and index."""

import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.features import FEATURES
from {{ cookiecutter.package_name }}.production.feedback import (
    FeedbackError,
    iso_week,
    join,
    label_record,
    load,
    prediction_record,
    read_labels,
    read_predictions,
    write_jsonl,
)

MONDAY = datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def record(valid_row):
    """One valid prediction record."""
    return prediction_record("req-1", 0, MONDAY, "v1", valid_row, 0.25, "v0", 0.5)


def test_a_prediction_joins_its_label_by_request_id_and_index(tmp_path, valid_row):
    write_jsonl(
        tmp_path / "p" / "a.jsonl",
        [prediction_record("req-1", i, MONDAY, "v1", valid_row, score) for i, score in enumerate((0.1, 0.9))],
    )
    write_jsonl(tmp_path / "f" / "a.jsonl", [label_record("req-1", 1, 1, MONDAY), label_record("req-1", 0, 0, MONDAY)])
    labelled = load(tmp_path / "p", tmp_path / "f")
    assert labelled.y.tolist() == [0, 1] and labelled.score.tolist() == [0.1, 0.9]
    assert labelled.X.shape == (2, len(FEATURES))
    assert labelled.X[0].tolist() == [float(valid_row[f.name]) for f in FEATURES]
    assert labelled.week.tolist() == ["2026-W02", "2026-W02"]
    assert np.isnan(labelled.shadow_score).all() and labelled.shadow_version.tolist() == ["", ""]


def test_the_latest_label_of_a_row_wins(record):
    labels = [label_record("req-1", 0, 1, MONDAY), label_record("req-1", 0, 0, MONDAY.replace(day=6))]
    predictions = read_predictions_of([record])
    assert join(predictions, read_labels_of(labels)).y.tolist() == [0]
    assert join(predictions, read_labels_of(labels[::-1])).y.tolist() == [0]


def test_a_repeated_log_line_never_hides_the_first_one_logged(record):
    later = {**record, "time": MONDAY.replace(hour=11).isoformat(), "score": 0.75}
    for lines in ([record, later], [later, record], [record, record, later]):
        labelled = join(read_predictions_of(lines), read_labels_of([label_record("req-1", 0, 1, MONDAY)]))
        assert (len(labelled), labelled.score.tolist(), labelled.repeated) == (1, [0.25], len(lines) - 1)


def test_unlabelled_predictions_and_labels_of_no_prediction_are_counted(record):
    other = {**record, "request_id": "req-2"}
    labelled = join(read_predictions_of([record, other]), read_labels_of([label_record("req-3", 0, 1, MONDAY)]))
    assert (len(labelled), labelled.unlabelled, labelled.orphans) == (0, 2, 1)
    assert labelled.summary().startswith("0 labelled rows; 2 predictions without a label yet, 1 labels without")


def test_missing_stores_mean_nothing_has_arrived_yet(tmp_path):
    assert len(load(tmp_path / "no-predictions", tmp_path / "no-feedback")) == 0


def test_a_feedback_record_without_an_index_labels_row_0(tmp_path):
    (tmp_path / "labels.jsonl").write_text(json.dumps({"request_id": "r", "label": 1, "time": "2026-01-05T00:00:00Z"}))
    (label,) = read_labels(tmp_path / "labels.jsonl")
    assert (label.index, label.label, label.time) == (0, 1, datetime(2026, 1, 5, tzinfo=timezone.utc))


def test_a_torn_last_line_is_a_write_under_way_and_skipped(tmp_path, record):
    (tmp_path / "log.jsonl").write_text(json.dumps(record) + "\n" + json.dumps(record)[:40])
    assert len(read_predictions(tmp_path / "log.jsonl")) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"score": 1.5}, "score must be a number from 0 to 1"),
        ({"score": float("nan")}, "score must be a number from 0 to 1"),
        ({"score": True}, "score must be a number from 0 to 1"),
        ({"request_id": ""}, "request_id must be a non-empty string"),
        ({"index": -1}, "index must be a whole number >= 0"),
        ({"time": "last Tuesday"}, "time must be an ISO 8601 time"),
        ({"row": [1, 2]}, "row must be an object of numbers"),
        ({"row": {"amount": "3"}}, "row must be an object of numbers"),
        ({"shadow_score": None}, "shadow_version and shadow_score must both be set or both be null"),
        ({"model_version": None}, "model_version must be a model version name"),
        ({"model_version": "<img src=x onerror=alert(1)>"}, "model_version must be a model version name"),
        ({"shadow_version": "[click](https://example.com)"}, "shadow_version must be a model version name"),
    ],
    ids=["score above 1", "NaN score", "boolean score", "empty id", "negative index", "bad time", "row", "text value",
         "half shadow", "no version", "version as HTML", "shadow version as a link"],
)  # fmt: skip
def test_a_bad_prediction_record_is_one_line_naming_file_and_line(tmp_path, record, change, message):
    lines = [json.dumps(record), json.dumps({**record, **change}), json.dumps(record)]
    (tmp_path / "log.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(FeedbackError) as error:
        read_predictions(tmp_path)
    assert str(error.value).startswith(f"{tmp_path / 'log.jsonl'}, line 2: {message}")
    assert "\n" not in str(error.value)


def test_a_linked_log_file_is_refused_without_showing_its_target(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "log.jsonl").symlink_to(secret)
    with pytest.raises(FeedbackError, match="is a symbolic link") as error:
        read_predictions(tmp_path / "store")
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize(
    "line",
    ['{"request_id": "r", "label": 2, "time": "2026-01-05"}', '{"request_id": "r", "label": true, "time": "2026"}',
     '["r", 1]', "{not json"],
    ids=["label 2", "boolean label", "not an object", "not JSON"],
)  # fmt: skip
def test_a_bad_label_record_is_one_line_naming_file_and_line(tmp_path, line):
    (tmp_path / "labels.jsonl").write_text(line + "\n")
    with pytest.raises(FeedbackError, match=r"labels\.jsonl, line 1: "):
        read_labels(tmp_path)


@pytest.mark.parametrize("value", [float("nan"), "missing"], ids=["NaN", "missing"])
def test_a_logged_row_without_a_number_for_a_feature_is_named_when_joined(tmp_path, record, value):
    name = FEATURES[0].name
    record["row"] = {**record["row"], name: value}
    if value == "missing":
        del record["row"][name]
    write_jsonl(tmp_path / "p" / "log.jsonl", [record])
    write_jsonl(tmp_path / "f" / "labels.jsonl", [label_record("req-1", 0, 1, MONDAY)])
    with pytest.raises(FeedbackError, match=rf"log\.jsonl, line 1: row holds no number for the feature {name}"):
        load(tmp_path / "p", tmp_path / "f")


def test_iso_week_is_read_in_utc():
    assert iso_week(datetime(2026, 1, 4, 23, 30, tzinfo=timezone.utc)) == "2026-W01"
    assert iso_week(datetime.fromisoformat("2026-01-05T00:30:00+02:00")) == "2026-W01"


def read_predictions_of(records):
    """Parse prediction records with the real reader, through a temporary file."""
    return _through_file(records, read_predictions)


def read_labels_of(records):
    """Parse label records with the real reader, through a temporary file."""
    return _through_file(records, read_labels)


def _through_file(records, reader):
    """Write records to a temporary JSON Lines file and read them back."""
    with tempfile.TemporaryDirectory() as folder:
        return reader(write_jsonl(Path(folder) / "records.jsonl", records))
