"""The service under gunicorn with the shipped config, over real sockets on 127.0.0.1: slow clients, the server's
own errors, chunked bodies, and a model loaded before the first request.

These tests start gunicorn, so the normal test run leaves them out: run them with `pytest -m server` (or
`tox -e server`).
"""

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.service import MAX_BODY_BYTES
from {{ cookiecutter.package_name }}.staging import free_port, wait_until_ready

pytestmark = pytest.mark.server

SLOW_CLIENTS = 100  # connections that trickle their headers or their body, one byte at a time
PROBES = 200  # requests to /health and /predict while they do
TIMEOUT = 5.0  # seconds a probe may wait for its answer (a held sync worker made them wait 30 s and more)
CHUNKED = b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"


@contextlib.contextmanager
def gunicorn(registry_root: Path, log: Path):
    """Run the service as the image does (gunicorn with gunicorn.conf.py) on a free port; yield the port."""
    port = free_port()
    package = "{{ cookiecutter.package_name }}"
    command = [sys.executable, "-m", "gunicorn", "--config", str(Path(__file__).parents[1] / "gunicorn.conf.py")]
    command += ["--bind", f"127.0.0.1:{port}", f"{package}.service:create_app()"]
    env = {**os.environ, "MODEL_REGISTRY": str(registry_root), "MODEL_STAGE": "production"}
    with log.open("w") as output:
        server = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield port, server
    finally:
        server.terminate()
        server.wait(timeout=15)


@pytest.fixture(scope="module")
def port(production_registry, tmp_path_factory):
    """The port of a service on the session's production registry, started once for this module."""
    with gunicorn(production_registry, tmp_path_factory.mktemp("server") / "gunicorn.log") as (port, server):
        wait_until_ready(f"http://127.0.0.1:{port}", server, seconds=60)
        yield port


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, str, bytes]:
    """One request on a new connection: (status, content type, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request(method, path, body, {"Content-Type": "application/json"} if body is not None else {})
        response = connection.getresponse()
        return response.status, response.headers.get_content_type(), response.read()
    finally:
        connection.close()


def raw(port: int, data: bytes) -> tuple[int, str, bytes]:
    """Send raw bytes and parse the answer: (status, content type, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as connection:
        with contextlib.suppress(OSError):  # the server may answer and close before everything is sent
            connection.sendall(data)
        answer = b""
        with contextlib.suppress(ConnectionResetError):  # a server closing with unread bytes resets the connection
            while chunk := connection.recv(65_536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    content_type = {key.lower(): value for key, value in headers.items()}.get("content-type", "")
    return int(lines[0].split()[1]), content_type.split(";")[0], body


def check_error(status: int, content_type: str, body: bytes) -> list[str]:
    """Check the service's JSON error shape and return the fields it names."""
    assert 400 <= status < 500 and content_type == "application/json", (status, content_type, body[:300])
    error = json.loads(body)
    assert set(error) == {"error", "details"} and all(set(d) == {"field", "message"} for d in error["details"])
    return [detail["field"] for detail in error["details"]]


class Trickler(threading.Thread):
    """A slow client: sends the start of a request, then one more byte every ``interval`` seconds until stopped."""

    def __init__(self, port: int, start: bytes, stop: threading.Event, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.port, self.start_bytes, self.stop, self.interval = port, start, stop, interval
        self.connected = threading.Event()

    def run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT) as connection:
            connection.sendall(self.start_bytes)
            self.connected.set()
            while not self.stop.wait(self.interval):
                connection.sendall(b"a")


def test_slow_clients_trickling_headers_or_bodies_leave_health_and_predict_answering(port, valid_row):
    headers = b"POST /predict HTTP/1.1\r\nHost: localhost\r\nX-Slow: "  # never finishes its headers
    body = b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 999\r\n\r\n"
    stop = threading.Event()
    slow = [Trickler(port, headers if number % 2 else body, stop) for number in range(SLOW_CLIENTS)]
    for client in slow:
        client.start()
    try:
        assert all(client.connected.wait(TIMEOUT) for client in slow)
        valid_body = json.dumps(valid_row).encode()
        answers = [
            request(port, "GET", "/health")[0] if number % 2 else request(port, "POST", "/predict", valid_body)[0]
            for number in range(PROBES)
        ]
        bodies_trickling = sum(client.is_alive() for number, client in enumerate(slow) if not number % 2)
    finally:
        stop.set()
        for client in slow:
            client.join(TIMEOUT)
    assert answers == [200] * PROBES
    assert bodies_trickling == SLOW_CLIENTS // 2  # the attack held all along (unfinished heads are cut after 5 s)


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nNo colon here\r\n\r\n",
        b"GET /" + b"a" * 5_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 9_000 + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n",
    ],
    ids=["bad request line", "bad header", "request line too long", "header too large", "unknown transfer coding"],
)
def test_the_servers_own_errors_are_json_not_html(port, data):
    status, content_type, body = raw(port, data)
    assert status < 500 or status == 501, status
    assert content_type == "application/json"
    error = json.loads(body)
    assert set(error) == {"error", "details"}


def over_the_limit(row: dict) -> bytes:
    """Chunks of valid JSON, then spaces past the limit, then garbage: cut off at the limit, it would be valid."""
    body = json.dumps(row).encode()
    body += b" " * (MAX_BODY_BYTES - len(body)) + b"garbage"
    parts = [body[start : start + 65_536] for start in range(0, len(body), 65_536)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def malformed(row: dict) -> bytes:
    """A chunk whose size is not a hexadecimal number."""
    return b"zz\r\n{}\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    ("chunks", "status"), [(over_the_limit, 413), (malformed, 400)], ids=["over the limit", "malformed"]
)
def test_a_chunked_body_over_the_limit_or_malformed_gets_a_json_4xx(port, valid_row, chunks, status):
    answer = raw(port, CHUNKED + b"\r\n\r\n" + chunks(valid_row))
    assert answer[0] == status
    assert check_error(*answer) == ["body"]


def test_a_refused_large_body_closes_the_connection_instead_of_being_read_to_its_end(port):
    head = b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as connection:
        connection.sendall(head + b"Content-Length: %d\r\n\r\n" % (100 * MAX_BODY_BYTES) + b" " * 65_536)
        answer = connection.recv(65_536)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"\r\nConnection: close\r\n" in answer


def test_workers_load_the_model_before_they_accept_requests_then_freeze_it(production_registry, tmp_path):
    log = tmp_path / "gunicorn.log"
    with gunicorn(production_registry, log) as (port, server):
        status, deadline = None, time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            with contextlib.suppress(OSError):
                status, _, _ = request(port, "GET", "/health")
                break
            time.sleep(0.05)
        assert status == 200
        # nothing asked for the model yet, so the worker that answered has loaded it when it started
        assert "serving production model" in log.read_text()
        assert request(port, "GET", "/ready")[0] == 200
    # then each worker leaves what it loaded out of the garbage collector's full passes (post_worker_init): run here
    # in a process of its own, as the config sets environment variables and hooks, and a freeze is for a whole process
    config = Path(__file__).parents[1] / "gunicorn.conf.py"
    code = f"import gc, runpy; runpy.run_path({str(config)!r})['post_worker_init'](None); print(gc.get_freeze_count())"
    frozen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(frozen) > 1_000
