"""Gunicorn settings for production: `fraud-detector serve` and the Dockerfile both use them.

gunicorn reads ./gunicorn.conf.py by default; `serve` passes it by its path.
"""

import gc
import json
import os

from gunicorn import util

from fraud_detector.config import layers

# one native thread per worker: OpenMP/BLAS pools in every worker would oversubscribe the cores (a gradient-
# boosting model answered 10 to 60 requests/s on 2 cores without this, about 2,900 with it); set here, in the
# master, before any worker imports numpy or scikit-learn, which read these variables once, at import
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(variable, "1")

bind = os.environ.get("BIND", "127.0.0.1:8000")
# one worker process per core: set WEB_CONCURRENCY to the number of cores the service may use
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gevent, not sync: a sync worker is held by one client until its request has fully arrived, so two clients
# trickling their headers took the service down; a gevent worker waits for many connections at once and spends
# CPU only on requests that have arrived (100 slow clients held, at the sync workers' throughput: bench/RESULTS.md)
worker_class = "gevent"
worker_connections = 1000  # open connections per worker, slow ones included; more wait in the listen backlog
# keep-alive: a reused connection saves the TCP set-up that made gevent without it cost 1.5x the CPU per request
# of sync workers; it also bounds a request's head: a client that has not sent all its headers within this many
# seconds is disconnected (a slow body is bounded by worker_connections only)
keepalive = 5
timeout = 30  # a worker that has not come back to its event loop for this long is restarted
graceful_timeout = 10
accesslog = None
errorlog = "-"
loglevel = "info"
# no gunicornc control socket: its default path is shared by every gunicorn the user runs, so a staging
# smoke test would take it over from the production service (older gunicorn versions ignore this setting)
control_socket_disable = True

# a layer on the hello world (the production loop) adds its own hooks: its metrics folder
for _layer in layers():
    globals().update(_layer.gunicorn_hooks())


def post_worker_init(worker) -> None:
    """Leave what the worker has loaded (the libraries, the app, the model) out of the garbage collector's full passes.

    A full pass walks every object the process holds: 56 ms with scikit-learn loaded, more on a busy machine, a pause
    in whichever request sets it off, every few thousand requests. Frozen objects are skipped (bench/RESULTS.md).
    """
    gc.collect()
    gc.freeze()


def pre_request(worker, req) -> None:
    """Close, not keep alive, a connection whose body is chunked or over 64 KiB once it is answered.

    To read the next request on a kept-alive connection, gunicorn first reads whatever body the app left unread
    (a 413 reads none): a sender streaming a huge body fast would cost up to the keep-alive time of CPU.
    """
    sizes = [int(value) for name, value in req.headers if name == "CONTENT-LENGTH"]
    if any(name == "TRANSFER-ENCODING" for name, _ in req.headers) or sum(sizes) > 65_536:
        req.must_close = True


def json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Write one of gunicorn's own errors (a malformed request line or header) in the service's JSON error shape."""
    body = json.dumps({"error": reason.lower(), "details": [{"field": "request", "message": mesg}]}).encode()
    head = f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
    util.write_nonblock(sock, f"{head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body)


# gunicorn has no setting for its error page: every worker writes its parser's errors with util.write_error, an
# HTML page, so the workers (forked from this process) get this JSON one instead; tests/test_server.py checks it
util.write_error = json_error
