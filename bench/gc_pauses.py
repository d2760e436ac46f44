"""The tail of short runs (issue 22): full garbage-collector passes in a fresh worker, with and without gc.freeze().

Usage (from the template repository, with wrk installed; the same work folder as serving.py, whose lab it reuses):

    python bench/gc_pauses.py                      # 3 fresh starts of each server, 12 windows of 1 s each
    python bench/gc_pauses.py --runs 5 --windows 20

A full pass of the garbage collector walks every object a process holds; with scikit-learn, pydantic and Flask loaded
that is about 126,000 objects. The shipped gunicorn.conf.py freezes them once a worker has loaded the app
(``post_worker_init``: ``gc.collect(); gc.freeze()``), so later full passes skip them. Each run here starts a server
afresh, waits for its first 200, and runs wrk at one connection for ``--windows`` windows of ``--duration`` seconds
in a row (a short benchmark run is one such window); three servers take turns:

* ``frozen``: the shipped service (gunicorn with the project's gunicorn.conf.py, as ``serve`` starts it);
* ``not frozen``: the same, but without the config's ``post_worker_init``, as before the change;
* ``bare Flask``: serving.py's bare Flask app under gunicorn with 2 sync workers (its usual baseline; not probed).

The first two run under a probe config that executes the project's gunicorn.conf.py and then reports on stderr the
length and the time of every full pass (generation 2) in each worker; the table counts those that fell inside a
window (a worker's exit makes one more, after the last window).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

from serving import Lab, Server, Target, make_targets, package_of, prepare_lab, say, server_env, wrk

PROBE = """
import gc, os, sys, time

_config = os.environ["SHIPPED_GUNICORN_CONFIG"]
exec(compile(open(_config).read(), _config, "exec"))
_shipped_hook = globals().pop("post_worker_init", None) if os.environ.get("GC_FREEZE") == "1" else None


def post_worker_init(worker):
    if _shipped_hook is not None:
        _shipped_hook(worker)
    started = {}

    def full_pass(phase, info):
        if info["generation"] == 2:
            if phase == "start":
                started["at"] = time.perf_counter()
            else:
                took = 1000 * (time.perf_counter() - started["at"])
                print(f"full-gc-pass-ms {took:.2f} at {time.time():.3f}", file=sys.stderr, flush=True)

    gc.callbacks.append(full_pass)
"""
PASS = re.compile(r"^full-gc-pass-ms ([\d.]+) at ([\d.]+)$", re.MULTILINE)


def probed(lab: Lab, name: str, freeze: bool) -> Target:
    """The shipped service under the probe config, with or without the shipped post_worker_init."""
    probe = lab.work / "gc-probe.conf.py"
    probe.write_text(PROBE)
    command = [lab.python, "-m", "gunicorn", "--config", probe, "--bind", "127.0.0.1:{port}"]
    command.append(f"{package_of(lab.project)}.service:create_app()")
    env = {
        "MODEL_REGISTRY": str(lab.registries["lr"]),
        "SHIPPED_GUNICORN_CONFIG": str(lab.project / "gunicorn.conf.py"),
        "GC_FREEZE": "1" if freeze else "",
    }
    bodies = lab.bodies / "one.json", lab.bodies / "batch.json"
    return Target(name, name, command, "/predict", *bodies, cwd=lab.project, env=server_env(env))


def one_run(target: Target, work: Path, windows: int, seconds: int) -> list[dict]:
    """Start ``target`` afresh, run wrk at one connection ``windows`` times, stop it; each window's figures."""
    server = Server(target, work)
    found = []
    with server:
        server.start()
        for _ in range(windows):
            began = time.time()
            result = wrk(server.url, target.one, 1, seconds, latency=True)
            found.append({"p99": result.p99_ms, "max": result.max_ms, "span": (began, time.time())})
    passes = [(float(ms), float(at)) for ms, at in PASS.findall(server.log.read_text())]
    for window in found:
        begin, end = window.pop("span")
        window["passes"] = [ms for ms, at in passes if begin <= at <= end]
    return found


def summary(name: str, windows: list[dict], probed_target: bool) -> str:
    """One table row: the windows' p99 (median and worst), how many exceeded 10 ms, and the full passes in them."""
    p99 = [window["p99"] for window in windows if window["p99"] is not None]
    worst = max(window["max"] for window in windows if window["max"] is not None)
    passes = [ms for window in windows for ms in window["passes"]]
    gc_cells = f"{len(passes)} | {max(passes, default=0):.1f}" if probed_target else "– | –"
    tails = sum(value > 10 for value in p99)
    return (
        f"| {name} | {len(windows)} | {statistics.median(p99):.2f} | {max(p99):.2f} | {tails} | {worst:.1f} | "
        f"{gc_cells} |"
    )


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-serving"), help="serving.py's work folder")
    parser.add_argument("--runs", type=int, default=3, help="fresh starts of each server (default 3)")
    parser.add_argument("--windows", type=int, default=12, help="wrk runs in a row per start (default 12)")
    parser.add_argument("--duration", type=int, default=1, help="seconds of each wrk run (default 1)")
    args = parser.parse_args(argv)
    lab = prepare_lab(args.work, with_mlflow=False)
    targets = {
        "frozen (shipped)": probed(lab, "frozen (shipped)", freeze=True),
        "not frozen (before)": probed(lab, "not frozen (before)", freeze=False),
        "bare Flask": make_targets(lab, tune=False)["bare-flask-lr"],
    }
    results: dict[str, list[dict]] = {name: [] for name in targets}
    for index in range(args.runs):
        say(f"run {index + 1} of {args.runs}")
        for name, target in targets.items():
            results[name] += one_run(target, args.work, args.windows, args.duration)
    print(
        f"# {args.runs} fresh starts of each server, then {args.windows} wrk runs of {args.duration} s in a row", end=""
    )
    print(" at one connection, 1-row requests\n")
    print("| server | wrk runs | p99 ms, median | p99 ms, worst | runs with p99 > 10 ms | slowest request ms ", end="")
    print("| full GC passes during the runs | longest pass ms |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for name, windows in results.items():
        print(summary(name, windows, probed_target=name != "bare Flask"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
