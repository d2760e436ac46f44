"""The production loop: a layer on top of the hello world, in a package of its own.

It plugs into the core at two points, found through the entry point of pyproject.toml's
`[project.entry-points."<package>.layers"]` (the core never imports this package by name):
- the command line: `extend_cli` adds guard, simulate, reproduce and bisect, and `monitor` on the live log;
- the service: `install` adds X-Request-ID, the prediction log, the shadow model and /metrics to the app;
and gunicorn's settings take its hooks (`gunicorn_hooks`: the metrics folder of Prometheus's multiprocess mode).
Each function imports its modules when called, so that `--help` loads none of them.
"""

from __future__ import annotations


def extend_cli(parsers, add, shared) -> None:
    """Add this layer's commands and flags to the core's command line."""
    from .cli import extend

    extend(parsers, add, shared)


def install(app, slot):
    """Add the layer to a service app; return what records each scored request."""
    from .predictions import attach

    return attach(app, slot)


def gunicorn_hooks() -> dict:
    """Gunicorn server hooks of this layer (called in the master, before any worker starts)."""
    from .multiprocess import gunicorn_hooks as hooks

    return hooks()
