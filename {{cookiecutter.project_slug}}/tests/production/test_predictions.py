"""The prediction log: every scored row logged with its request id, off the request path, losses counted."""

import errno
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from {{ cookiecutter.package_name }}.production import predictions
from {{ cookiecutter.package_name }}.production.predictions import read_records
from {{ cookiecutter.package_name }}.service import ANSWER, create_app

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def make_app(registry, **config):
    """The service on ``registry`` with some settings changed."""
    return create_app({"REGISTRY": str(registry.root), "RELOAD_INTERVAL": 0, **config})


def post(client, body, **headers):
    """POST /predict with a JSON body."""
    return client.post("/predict", data=json.dumps(body), content_type="application/json", headers=headers)


@pytest.fixture
def folder(tmp_path):
    """Where a test's service writes its prediction log (tmp_path also holds the test's registry)."""
    return tmp_path / "log"


def logged(app, folder):
    """Every record the app logged into ``folder``, once its writer has written everything and stopped."""
    app.extensions["predictions"].log.close()
    return list(read_records(folder))


def wait_for(condition, seconds=10):
    """Poll until ``condition()`` is true; fail when time runs out."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_every_scored_row_is_logged_with_the_request_id_it_was_answered_with(registry, valid_row, folder):
    app = make_app(registry, PREDICTION_LOG=str(folder))
    response = post(app.test_client(), valid_row)
    assert response.status_code == 200
    (record,) = logged(app, folder)
    assert list(record) == [
        "request_id",
        "client_request_id",
        "index",
        "time",
        "model_version",
        "row",
        "score",
        "shadow_version",
        "shadow_score",
    ]
    assert record["request_id"] == response.headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(record["request_id"])
    assert record["index"] == 0
    assert record["model_version"] == response.get_json()["model_version"] == registry.current("production")
    assert record["row"] == valid_row
    assert record["score"] == response.get_json()[ANSWER]
    assert (record["shadow_version"], record["shadow_score"]) == (None, None)
    written = datetime.fromisoformat(record["time"])
    assert written.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - written) < timedelta(minutes=1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", record["time"])


def test_batch_rows_are_logged_in_order_with_their_indexes(registry, valid_rows, folder):
    app = make_app(registry, PREDICTION_LOG=str(folder))
    response = post(app.test_client(), valid_rows)
    records = logged(app, folder)
    assert [r["index"] for r in records] == list(range(len(valid_rows)))
    assert {r["request_id"] for r in records} == {response.headers["X-Request-ID"]}
    assert [r["row"] for r in records] == valid_rows
    assert [r["score"] for r in records] == response.get_json()[ANSWER]


def test_a_client_request_id_is_logged_beside_the_service_id_and_never_becomes_the_join_key(
    registry, valid_row, folder
):
    app = make_app(registry, PREDICTION_LOG=str(folder))
    client = app.test_client()
    responses = [post(client, valid_row, **{"X-Request-ID": "txn-2024.06:42_A"}) for _ in range(2)]
    ids = [r.headers["X-Request-ID"] for r in responses]
    assert all(GENERATED_ID.fullmatch(i) for i in ids) and ids[0] != ids[1]
    records = logged(app, folder)
    assert [(r["request_id"], r["client_request_id"]) for r in records] == [(i, "txn-2024.06:42_A") for i in ids]


HOSTILE_IDS = {
    "too long": "a" * 129,
    "space": "two words",
    "quote": 'id"},{"score":0',
    "path": "../../etc/passwd",
    "not ascii": "idé",
    "empty": "",
    "comma": "a,b",
}


@pytest.mark.parametrize("hostile", HOSTILE_IDS.values(), ids=HOSTILE_IDS.keys())
def test_a_hostile_x_request_id_is_replaced_by_a_generated_one(registry, valid_row, folder, hostile):
    app = make_app(registry, PREDICTION_LOG=str(folder))
    response = post(app.test_client(), valid_row, **{"X-Request-ID": hostile})
    assert response.status_code == 200
    assert GENERATED_ID.fullmatch(response.headers["X-Request-ID"])
    (record,) = logged(app, folder)
    assert (record["request_id"], record["client_request_id"]) == (response.headers["X-Request-ID"], None)


def test_every_response_carries_a_request_id_and_unscored_requests_log_nothing(registry, folder):
    app = make_app(registry, PREDICTION_LOG=str(folder))
    client = app.test_client()
    responses = [client.get("/health"), client.get("/nowhere"), post(client, {"colour": "red"}), client.get("/metrics")]
    assert [r.status_code for r in responses] == [200, 404, 422, 200]
    ids = [r.headers["X-Request-ID"] for r in responses]
    assert all(GENERATED_ID.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)
    assert logged(app, folder) == []


def test_the_log_is_off_unless_prediction_log_names_a_sink(registry, valid_row, tmp_path, monkeypatch, metric):
    monkeypatch.delenv("PREDICTION_LOG", raising=False)
    monkeypatch.chdir(tmp_path)
    client = make_app(registry).test_client()
    assert post(client, valid_row).status_code == 200
    assert [path.name for path in tmp_path.iterdir()] == ["registry"]
    assert metric(client, "prediction_log_written_total") == 0


def test_the_stdout_sink_writes_one_json_line_per_row(registry, valid_rows, capfd):
    app = make_app(registry, PREDICTION_LOG="stdout")
    response = post(app.test_client(), valid_rows[:3])
    app.extensions["predictions"].log.close()
    lines = capfd.readouterr().out.splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1, 2]
    assert {json.loads(line)["request_id"] for line in lines} == {response.headers["X-Request-ID"]}


@pytest.mark.slow
def test_each_process_writes_its_own_files_rotated_by_size(registry, valid_row, folder):
    app = make_app(registry, PREDICTION_LOG=str(folder), PREDICTION_LOG_MAX_BYTES=400)
    client = app.test_client()
    ids = []
    for _ in range(5):
        ids.append(post(client, valid_row).headers["X-Request-ID"])
        wait_for(lambda: len(list(read_records(folder))) == len(ids))  # one record per write
    names = sorted(path.name for path in folder.iterdir())
    assert len(names) == 5  # one record (about 300 bytes) per file
    own_file = re.compile(r"predictions-\d{8}T\d{6}Z-" + str(os.getpid()) + r"-\d+\.jsonl")
    assert all(own_file.fullmatch(name) for name in names)
    assert sorted(r["request_id"] for r in logged(app, folder)) == sorted(ids)


def test_a_full_disk_drops_and_counts_records_without_failing_the_request(
    registry, valid_rows, folder, monkeypatch, metric, caplog
):
    def half_then_disk_full(fd, data):
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    app = make_app(registry, PREDICTION_LOG=str(folder))
    client = app.test_client()
    monkeypatch.setattr(predictions, "write_all", half_then_disk_full)
    response = post(client, valid_rows[:4])
    assert response.status_code == 200 and len(response.get_json()[ANSWER]) == 4
    wait_for(lambda: metric(client, "prediction_log_dropped_total", reason="write_error") == 4)
    assert list(read_records(folder)) == []  # the half-written lines were cut off
    assert any("No space left on device" in record.getMessage() for record in caplog.records)
    monkeypatch.undo()  # the disk has room again
    after = post(client, valid_rows[0])
    records = logged(app, folder)
    assert [r["request_id"] for r in records] == [after.headers["X-Request-ID"]]
    assert metric(client, "prediction_log_written_total") == 1


def test_a_full_buffer_drops_and_counts_rows_while_requests_are_answered(
    registry, valid_row, folder, monkeypatch, metric
):
    disk_is_stuck = threading.Event()
    real_write_all = predictions.write_all

    def stuck(fd, data):
        disk_is_stuck.wait(timeout=30)
        real_write_all(fd, data)

    monkeypatch.setattr(predictions, "write_all", stuck)
    app = make_app(registry, PREDICTION_LOG=str(folder), PREDICTION_LOG_CAPACITY=2)
    client = app.test_client()
    answers = [post(client, valid_row) for _ in range(10)]
    assert [r.status_code for r in answers] == [200] * 10
    dropped = metric(client, "prediction_log_dropped_total", reason="queue_full")
    assert 6 <= dropped <= 8  # at most 2 rows waiting, and the stuck writer holds up to 2 more
    disk_is_stuck.set()
    records = logged(app, folder)
    assert len(records) + dropped == 10
    assert metric(client, "prediction_log_written_total") == len(records)


GEVENT_WORKER = """
from gevent import monkey

monkey.patch_all()  # what gunicorn's gevent worker, the shipped one, does first
import json, sys
from {{ cookiecutter.package_name }}.production import predictions
from {{ cookiecutter.package_name }}.service import create_app

predictions.GATHER_SECONDS = 0  # the writer takes what waits as soon as it runs
registry, folder, body = sys.argv[1:]
app = create_app({"REGISTRY": registry, "RELOAD_INTERVAL": 0, "PREDICTION_LOG": folder, "PREDICTION_LOG_CAPACITY": 25})
client = app.test_client()  # no socket: a request never waits, so it never lets another greenlet run by itself
statuses = [client.post("/predict", data=body, content_type="application/json").status_code for _ in range(20)]
app.extensions["predictions"].log.close()
print(json.dumps(statuses))
"""


def test_under_gevent_a_worker_that_never_waits_does_not_starve_the_writer(registry, valid_rows, folder):
    body = json.dumps(valid_rows)  # 10 rows a request: 200 rows through a buffer of 25
    command = [sys.executable, "-c", GEVENT_WORKER, str(registry.root), str(folder), body]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2_000:]
    assert json.loads(done.stdout) == [200] * 20
    assert len(list(read_records(folder))) == 20 * len(valid_rows)


def test_read_records_skips_a_last_line_still_being_written_and_names_a_broken_one(tmp_path):
    good = json.dumps({"request_id": "a", "index": 0})
    (tmp_path / "predictions-1.jsonl").write_text(good + "\n" + '{"request_id": "b", "ind')
    assert list(read_records(tmp_path)) == [{"request_id": "a", "index": 0}]
    (tmp_path / "predictions-2.jsonl").write_text("not json\n" + good + "\n")
    with pytest.raises(ValueError, match="predictions-2.jsonl, line 1"):
        list(read_records(tmp_path))
