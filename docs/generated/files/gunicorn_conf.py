"""Gunicorn settings for production: `fraud-detector serve` and the Dockerfile both use them."""

import os
import shutil
import tempfile
from pathlib import Path

# one native thread per worker: OpenMP/BLAS pools in every worker would oversubscribe the cores (a gradient-
# boosting model answered 10 to 60 requests/s on 2 cores without this, about 2,900 with it); set here, in the
# master, before any worker imports numpy or scikit-learn, which read these variables once, at import
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(variable, "1")

bind = os.environ.get("BIND", "127.0.0.1:8000")
# one worker process per core: set WEB_CONCURRENCY to the number of cores the service may use
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# sync, not gthread: both cost the same CPU per request, but a kept-alive connection stays with the worker
# that accepted it (16 connections often split 16:0 between 2 workers, halving throughput), while a sync worker
# takes one request at a time from the shared socket, so whichever worker is free answers the next one, also
# while the other is loading a newly promoted model (put a buffering proxy in front for slow clients)
worker_class = "sync"
timeout = 30
graceful_timeout = 10
accesslog = None
errorlog = "-"
loglevel = "info"
# no gunicornc control socket: its default path is shared by every gunicorn the user runs, so a staging
# smoke test would take it over from the production service (older gunicorn versions ignore this setting)
control_socket_disable = True

# prometheus-client's multiprocess mode: every worker writes its metrics to files in this folder and /metrics adds
# them up; set here, in the master, before a worker imports prometheus-client (a fresh folder unless one is named)
metrics_folder_made = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if metrics_folder_made:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="fraud-detector-metrics-")


def on_starting(server):
    """Make or empty the metrics folder: values an earlier run left there would be added to this run's."""
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.db"):
        path.unlink()


def child_exit(server, worker):
    """Drop a dead worker's live gauges (the model versions it served) from /metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the metrics folder made above."""
    if metrics_folder_made:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
