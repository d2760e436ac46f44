"""Gunicorn hooks for /metrics across workers: prometheus-client's multiprocess mode needs one folder per server."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def gunicorn_hooks() -> dict:
    """Name the metrics folder (in the master, before a worker imports prometheus-client) and return the hooks.

    Every worker writes its metrics to files in this folder and /metrics adds them up; a fresh folder is made
    unless PROMETHEUS_MULTIPROC_DIR names one.
    """
    made = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if made:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="{{ cookiecutter.project_slug }}-metrics-")

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
        if made:
            shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)

    return {"on_starting": on_starting, "child_exit": child_exit, "on_exit": on_exit}
