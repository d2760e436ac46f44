"""Gunicorn settings for production: `{{ cookiecutter.project_slug }} serve` and the Dockerfile both use them."""

import os

# one native thread per worker: OpenMP/BLAS pools in every worker would oversubscribe the cores
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 10
accesslog = None
errorlog = "-"
loglevel = "info"
