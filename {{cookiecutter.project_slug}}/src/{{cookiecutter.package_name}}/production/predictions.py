"""The prediction log: every scored row as one JSON line, written off the request path; what is lost is counted."""

from __future__ import annotations

import atexit
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from flask import Flask, g, request

from .metrics import Metrics, instrument
from .shadow import Shadow

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # a client's X-Request-ID is logged only when it looks like this
CAPACITY = 50_000  # rows waiting for the writer; rows beyond it are dropped (and counted), never waited for
MAX_FILE_BYTES = 64 * 1024 * 1024  # a log file is closed and a new one begun past this size
GATHER_SECONDS = 0.05  # after waking, the writer lets rows gather this long: one write per gathering, not per request
PIPE_BUF = 4096  # writes up to this size reach a pipe whole, so two workers' lines never mix on stdout
OFF = ("", "off")
JSON = json.JSONEncoder(separators=(",", ":"))  # one compact encoder: json.dumps with options builds one per call


def new_request_id() -> str:
    """The service's own id of a request: 128 random bits, the prediction log's join key (no client can choose it)."""
    return uuid.uuid4().hex


def client_request_id(header: str | None) -> str | None:
    """The client's X-Request-ID when it is a safe token, else None: logged beside the service's id, never joined on."""
    return header if header and REQUEST_ID.fullmatch(header) else None


def iso_time(seconds: float) -> str:
    """A time.time() value in UTC, as ISO 8601 with milliseconds."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


class Scored(NamedTuple):
    """One scored request, kept as it is until the writer thread turns it into lines (a tuple: cheap to make)."""

    request_id: str
    client_request_id: str | None
    time: float
    model_version: str
    names: list[str]
    rows: list
    scores: list[float]
    shadow_version: str | None
    shadow_scores: list[float] | None

    def lines(self) -> Iterator[str]:
        """One JSON line per row, in the order of the request.

        What every row of the request shares is encoded once; per row, only its index, values and scores (a row is
        the service's validated dict, whose keys are the model's features in their order).
        """
        encode = JSON.encode
        ids = encode({"request_id": self.request_id, "client_request_id": self.client_request_id})[:-1]
        when = encode({"time": iso_time(self.time), "model_version": self.model_version})[1:-1]
        shadow_version = encode(self.shadow_version)
        # scores are finite floats, which JSON writes as repr() does
        shadow = map(repr, self.shadow_scores) if self.shadow_scores else ["null"] * len(self.rows)
        for index, (row, score, shadow_score) in enumerate(zip(self.rows, self.scores, shadow, strict=True)):
            scores = f'"score":{score!r},"shadow_version":{shadow_version},"shadow_score":{shadow_score}'
            yield f'{ids},"index":{index},{when},"row":{encode(row)},{scores}}}\n'


def write_all(fd: int, data: bytes) -> None:
    """Write every byte, however many calls it takes (the one place the log touches the disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class StdoutSink:
    """JSON lines on standard output, for a container's log collector."""

    def write(self, data: bytes) -> None:
        """Write whole lines, in pieces no larger than PIPE_BUF."""
        start = 0
        while start < len(data):
            end = data.rfind(b"\n", start, start + PIPE_BUF) + 1 or data.index(b"\n", start) + 1
            write_all(1, data[start:end])
            start = end

    def close(self) -> None:
        """Nothing to close."""


class FolderSink:
    """Files ``predictions-<time>-<pid>-<n>.jsonl`` in a folder: one per process at a time, a new one past max_bytes."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        """Write into ``folder`` (made when first needed)."""
        self.folder, self.max_bytes = Path(folder), max_bytes
        self._fd: int | None = None
        self._size = self._sequence = 0

    def write(self, data: bytes) -> None:
        """Append whole lines; after a failed write the file is cut back, so it never holds half a line."""
        if self._fd is not None and self._size and self._size + len(data) > self.max_bytes:
            self.close()
        fd = self._fd if self._fd is not None else self._open()
        try:
            write_all(fd, data)
        except OSError:
            try:
                os.ftruncate(fd, self._size)
            except OSError:
                self.close()  # cannot cut it back: end this file where it is, and begin a new one
            raise
        self._size += len(data)

    def _open(self) -> int:
        """Create the next file of this process."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        while True:
            self._sequence += 1
            path = self.folder / f"predictions-{stamp}-{os.getpid()}-{self._sequence}.jsonl"
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            except FileExistsError:
                continue
            self._size = 0
            return self._fd

    def close(self) -> None:
        """Close the current file; the next write begins a new one."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def open_sink(value: str, max_bytes: int = MAX_FILE_BYTES) -> StdoutSink | FolderSink | None:
    """The sink PREDICTION_LOG names: none for "" or "off", standard output for "stdout", else a folder."""
    if value in OFF:
        return None
    return StdoutSink() if value == "stdout" else FolderSink(Path(value), max_bytes)


class PredictionLog:
    """A bounded buffer of scored requests and one thread per process that scores them with the shadow and writes."""

    def __init__(
        self, sink, capacity: int, count: Callable[[str, int], None], log, shadow: Shadow | None = None
    ) -> None:
        """Keep at most ``capacity`` rows waiting; ``count(outcome, rows)`` hears of every row written or dropped."""
        self.sink, self.capacity, self.count, self.log, self.shadow = sink, capacity, count, log, shadow
        self._ready = threading.Condition()
        self._waiting: list[Scored] = []
        self._rows = 0
        self._pid: int | None = None
        self._closing = self._failing = False
        self._thread: threading.Thread | None = None
        atexit.register(self.close)

    def put(self, scored: Scored) -> None:
        """Hand a scored request to the writer, or drop it when the buffer is full; never blocks on the sink."""
        rows = len(scored.rows)
        with self._ready:
            if self._pid != os.getpid():  # first use, or a forked worker: the parent's thread and rows are not ours
                self._start()
            accepted = self._rows + rows <= self.capacity
            if accepted:
                self._waiting.append(scored)
                self._rows += rows
                if len(self._waiting) == 1:  # the writer sleeps until the first row; later ones find it gathering
                    self._ready.notify()
        if not accepted:
            self.count("queue_full", rows)
        # let the writer run: under gevent (the shipped worker) it is a greenlet, which a busy worker's requests
        # starve until the buffer fills and rows are dropped (75% under load in bench/serving.py); with real
        # threads, as in the tests, this only offers the GIL
        time.sleep(0)

    def _start(self) -> None:
        """Start this process's writer thread (called with the lock held)."""
        self._pid, self._waiting, self._rows = os.getpid(), [], 0
        self.sink.close()  # a forked worker must not append to its parent's file
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Write whatever is waiting, in one piece per wake-up, until closed."""
        while True:
            with self._ready:
                while not self._waiting and not self._closing:
                    self._ready.wait()
                if not self._closing:
                    self._ready.wait(GATHER_SECONDS)  # only close() wakes it early
                batch, self._waiting, self._rows = self._waiting, [], 0
                closing = self._closing
            if batch:
                self._write(batch)
            elif closing:
                return

    def _write(self, batch: list[Scored]) -> None:
        """Write a batch; a failure drops it, counts it and is logged once until writes succeed again."""
        rows = sum(len(scored.rows) for scored in batch)
        if self.shadow is not None:
            batch = self.shadow.fill(batch)
        try:
            self.sink.write("".join(line for scored in batch for line in scored.lines()).encode())
        except Exception as error:  # a dead writer thread would silently drop everything after this
            self.count("write_error", rows)
            if not self._failing:
                self.log.error("prediction log: dropping records: %s", error)
            self._failing = True
            return
        self.count("written", rows)
        if self._failing:
            self.log.warning("prediction log: writing again")
        self._failing = False

    def close(self, timeout: float = 5) -> None:
        """Write what is waiting, then stop the writer (at exit, or when a test is done with the log)."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout)
        self.sink.close()


class Recorder:
    """What the service does with every scored request: count the scores, hand the rows to the log."""

    def __init__(self, log: PredictionLog | None, metrics: Metrics) -> None:
        """Use the log when configured (None when off); the log's writer scores the shadow."""
        self.log, self.metrics = log, metrics
        self.shadow = log.shadow if log is not None else None

    def record(self, model, names: list[str], rows: list, scores: list[float]) -> None:
        """Called after the answer is computed: nothing here can change it or fail the request."""
        self.metrics.observe_scores(model.version, scores)
        if self.log is not None:
            ids = g.request_id, g.client_request_id
            self.log.put(Scored(*ids, time.time(), model.version, names, rows, scores, None, None))


def attach(app: Flask, slot) -> Recorder:
    """Give every response the service's own X-Request-ID (a label names it); set up /metrics, the log, the shadow."""
    config = app.config
    config.setdefault("PREDICTION_LOG", os.environ.get("PREDICTION_LOG", ""))
    config.setdefault("MODEL_SHADOW", os.environ.get("MODEL_SHADOW", ""))
    config.setdefault("PREDICTION_LOG_CAPACITY", CAPACITY)
    config.setdefault("PREDICTION_LOG_MAX_BYTES", MAX_FILE_BYTES)
    metrics = Metrics()
    instrument(app, metrics, lambda: slot.serving.model.version if slot.serving else None)
    sink = open_sink(str(config["PREDICTION_LOG"]), config["PREDICTION_LOG_MAX_BYTES"])
    shadow, wanted = None, config["MODEL_SHADOW"] not in OFF
    if wanted and sink is None:  # its scores go to the log and nowhere else
        app.logger.error("MODEL_SHADOW is set but PREDICTION_LOG is off: no shadow (its scores go only to the log)")
    elif wanted:
        shadow = Shadow.start(slot.registry, config["MODEL_SHADOW"], slot.interval, app.logger, metrics)
    capacity = config["PREDICTION_LOG_CAPACITY"]
    log = sink and PredictionLog(sink, capacity, metrics.count_log_rows, app.logger, shadow)

    @app.before_request
    def assign_request_id() -> None:
        g.request_id, g.client_request_id = new_request_id(), client_request_id(request.headers.get("X-Request-ID"))

    @app.after_request
    def send_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id") or new_request_id()
        return response

    recorder = Recorder(log, metrics)
    app.extensions["predictions"] = recorder
    return recorder


def read_records(folder: Path) -> Iterator[dict]:
    """Every record of a log folder, file by file in name order; a file's unfinished last line is skipped."""
    for path in sorted(Path(folder).glob("*.jsonl")):
        lines = path.read_bytes().split(b"\n")
        for number, line in enumerate(lines[:-1], start=1):  # a last line without its newline is still being written
            try:
                record = json.loads(line)
            except ValueError:
                raise ValueError(f"{path}, line {number} is not a JSON record: {line[:80]!r}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number} is not a JSON object: {line[:80]!r}")
            yield record
