"""Gunicorn settings for production: `{{ cookiecutter.project_slug }} serve` and the Dockerfile both use them."""

import os

# one native thread per worker: OpenMP/BLAS pools in every worker would oversubscribe the cores (a gradient-
# boosting model fell from about 1,500 to 0-24 requests/s on 2 cores without this); set here, in the master,
# before any worker imports numpy or scikit-learn, which read these variables once, at import
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(variable, "1")

bind = os.environ.get("BIND", "127.0.0.1:8000")
# one worker process per core: set WEB_CONCURRENCY to the number of cores the service may use
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# threaded workers keep connections alive (sync workers close each one after a single response), and while
# one thread loads a newly promoted model the others keep answering with the current one
worker_class = "gthread"
threads = 2
timeout = 30
graceful_timeout = 10
accesslog = None
errorlog = "-"
loglevel = "info"
# no gunicornc control socket: its default path is shared by every gunicorn the user runs, so a staging
# smoke test would take it over from the production service (older gunicorn versions ignore this setting)
control_socket_disable = True
