"""Slow clients, hostile bodies and cold start: the shipped service before and after issue 11, side by side.

Usage (from the template repository, with wrk installed: `apt-get install -y wrk`; nginx is optional):

    git worktree add /tmp/template-before <commit before the change>
    python bench/slow_clients.py --before /tmp/template-before                  # about 15 minutes
    python bench/slow_clients.py --before /tmp/template-before --repeat 1 --options shipped,before

It bakes this template and the ``--before`` one (default answers) into ``--work``, installs each into its own
venv and runs its pipeline for a production model (reusing what is already there, as serving.py does), plus a
HistGradientBoosting registry for the OpenMP figure and, for this template, a model whose features declare no
bounds. Then, ``--repeat`` times, for each server option in turn:

* throughput: 1-row requests/s with `wrk -t2 -c16` and the server's CPU per request (user + system of all its
  processes, from /proc), for the default model and for HistGradientBoosting;
* slow clients: ``--slow`` connections (half trickling their headers, half their body, one byte every 0.5 s)
  held open while one client sends /health and /predict requests one after another; each probe's latency, and
  failures (no answer within 5 s, or not 200);
* hostile bodies (shipped servers only): each body sent ``--hostile-repeat`` times; the server's CPU per request
  and the size of its answer;
* cold start (shipped servers and bare Flask): process start to the first 200 from /predict, and the model's
  load time in process (artifact.load) beside it.

Everything listens on 127.0.0.1; every loop is bounded. The tables printed at the end are medians, in Markdown.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import shlex
import shutil
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import serving
from serving import BENCH, Lab, Server, Target, cpu_seconds, prepare_lab, run, say, server_env, uv, wrk

SLOW_INTERVAL = 0.5  # seconds between two bytes of a slow client
PROBE_TIMEOUT = 5.0


# ---------------------------------------------------------------------------------------------------------------
# Helpers that run inside a lab's venv (called as `python slow_clients.py _name ...`)
# ---------------------------------------------------------------------------------------------------------------
def write_hostile(project: Path, out: Path) -> None:
    """(lab venv) Hostile bodies sized to this project's body limit, and the rows they are made from."""
    import importlib

    package = serving.package_of(project)
    features = importlib.import_module(f"{package}.features").FEATURES
    limit = importlib.import_module(f"{package}.service").MAX_BODY_BYTES
    row = json.loads((out.parent / "bodies" / "one.json").read_text())
    names = [f.name for f in features]

    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

    def keys(count: int, prefix: str = "") -> str:
        """An object of ``count`` distinct 3-character unknown keys: 8 bytes each, as in the finding."""
        names = itertools.islice((a + b + c for a in alphabet for b in alphabet for c in alphabet), count)
        return "{" + ",".join(f'"{prefix}{name}":0' for name in names) + "}"

    bodies = {
        "131,000 unknown keys, 1 MB (the finding)": keys(131_000).encode(),
        "unknown keys up to the body limit": keys((limit - 2) // 8).encode(),
        "1,000 rows, each with as many unknown keys as features": (
            "[" + ",".join([keys(len(names), "x")] * 1_000) + "]"
        ).encode(),
        "empty objects up to the body limit": b"[" + b",".join([b"{}"] * (limit // 3)) + b"]",
        "1,000 rows of strings for numbers": json.dumps([dict.fromkeys(names, "x")] * 1_000).encode(),
        "nesting up to the body limit": b"[" * (limit // 2) + b"]" * (limit // 2),
        "a number as long as the body limit": json.dumps({**row, names[0]: 0})
        .replace('"' + names[0] + '": 0', '"' + names[0] + '": ' + "9" * (limit - 300))
        .encode(),
        "a valid 1,000-row batch (reference)": json.dumps([row] * 1_000).encode(),
    }
    out.mkdir(parents=True, exist_ok=True)
    index = {}
    for number, (name, body) in enumerate(bodies.items()):
        (out / f"{number}.json").write_bytes(body)
        index[name] = str(out / f"{number}.json")
    (out / "index.json").write_text(json.dumps({"limit": limit, "bodies": index}))
    # for the model of unbounded features: every float at its largest value
    extreme = {**row, **{f.name: sys.float_info.max for f in features if f.kind == "float"}}
    (out / "extreme.json").write_text(json.dumps([extreme] * 1_000))


def train_unbounded(project: Path, registry_root: Path) -> None:
    """(lab venv) A production model whose numbers declare no bounds."""
    import dataclasses
    import importlib

    package = serving.package_of(project)
    features = importlib.import_module(f"{package}.features").FEATURES
    train = importlib.import_module(f"{package}.train")
    sources = importlib.import_module(f"{package}.sources")
    config = importlib.import_module(f"{package}.config")
    registry = importlib.import_module(f"{package}.registry")
    unbounded = tuple(dataclasses.replace(f, minimum=None, maximum=None) if f.kind != "bool" else f for f in features)
    week0 = sources.prepare(config.load_settings(), week=0)
    folder, metadata = train.train(week0.train, week0.holdout, project / "artifacts-unbounded", features=unbounded)
    models = registry.Registry(registry_root)
    models.register(folder, reason="slow-clients benchmark: unbounded features")
    models.promote(metadata["version"], "production", reason="slow-clients benchmark: unbounded features")


HELPERS = {
    "_hostile": lambda project, out: write_hostile(Path(project), Path(out)),
    "_unbounded": lambda project, registry: train_unbounded(Path(project), Path(registry)),
}


# ---------------------------------------------------------------------------------------------------------------
# The labs and the server options
# ---------------------------------------------------------------------------------------------------------------
def prepare(work: Path, before: Path) -> dict[str, Lab]:
    """The "before" and "after" labs, each with hostile bodies; the after lab also gets the unbounded model."""
    labs = {"before": prepare_lab(work / "before", False, before), "after": prepare_lab(work / "after", False)}
    for lab in labs.values():
        if not (lab.work / "hostile" / "index.json").exists():
            run(
                [lab.python, __file__, "_hostile", lab.project, lab.work / "hostile"], cwd=lab.project, env=server_env()
            )
    after = labs["after"]
    after.registries["unbounded"] = after.project / "registry-unbounded"
    if not (after.registries["unbounded"] / "stages" / "production").exists():
        say("training a model whose features declare no bounds")
        command = [after.python, __file__, "_unbounded", after.project, after.registries["unbounded"]]
        run(command, cwd=after.project, env=server_env())
    return labs


def gunicorn_target(lab: Lab, name: str, model: str, args: str = "") -> Target:
    """The lab's service exactly as its Dockerfile starts it (gunicorn with its gunicorn.conf.py), plus ``args``."""
    package = serving.package_of(lab.project)
    command = [lab.python, "-m", "gunicorn", "--config", str(lab.project / "gunicorn.conf.py")]
    command += ["--bind", "127.0.0.1:{port}", f"{package}.service:create_app()"]
    env = {"MODEL_REGISTRY": str(lab.registries[model]), "GUNICORN_CMD_ARGS": args, "XDG_RUNTIME_DIR": str(lab.work)}
    return Target(
        name, name, command, "/predict", lab.bodies / "one.json", lab.bodies / "batch.json", env=server_env(env)
    )


def waitress_target(lab: Lab, model: str) -> Target:
    """The after lab's app under waitress (one process, 8 threads, 1,000 connections; it buffers each request)."""
    if not (lab.python.parent / "waitress-serve").exists():
        run([*uv(), "pip", "install", "-q", "--python", lab.python, "waitress"])
    package = serving.package_of(lab.project)
    command = [lab.python.parent / "waitress-serve", "--listen=127.0.0.1:{port}", "--threads=8"]
    command += ["--connection-limit=1000", "--call"]
    command.append(f"{package}.service:create_app")
    env = server_env({"MODEL_REGISTRY": str(lab.registries[model]), "OMP_NUM_THREADS": "1"})
    return Target(
        "waitress", "waitress", command, "/predict", lab.bodies / "one.json", lab.bodies / "batch.json", env=env
    )


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    client_max_body_size 1m;
    upstream app {{ server 127.0.0.1:{upstream}; }}
    server {{
        listen 127.0.0.1:LISTEN_PORT;
        location / {{ proxy_pass http://app; }}
    }}
}}
"""


def nginx_target(lab: Lab, model: str, work: Path) -> Target | None:
    """nginx buffering requests in front of the after lab's code under 2 sync workers (both in one shell)."""
    nginx = shutil.which("nginx")
    if nginx is None:
        return None
    folder = work / "nginx"
    (folder / "body").mkdir(parents=True, exist_ok=True)
    (folder / "proxy").mkdir(exist_ok=True)
    upstream = serving.free_port()
    (folder / "nginx.conf.in").write_text(NGINX_CONF.format(work=folder, upstream=upstream))
    sync = gunicorn_target(lab, "nginx", model, "--worker-class sync")
    gunicorn = shlex.join(str(part).replace("127.0.0.1:{port}", f"127.0.0.1:{upstream}") for part in sync.command)
    script = (
        f"sed 's/LISTEN_PORT/'$1'/' {folder / 'nginx.conf.in'} > {folder / 'nginx.conf'}; "
        f"{gunicorn} & {nginx} -c {folder / 'nginx.conf'} -g 'user root;' & wait"
    )
    return Target(
        "nginx", "nginx in front of 2 sync workers", ["bash", "-c", script, "nginx", "{port}"], "/predict",
        sync.one, sync.batch, env=sync.env,
    )  # fmt: skip


def make_targets(labs: dict[str, Lab], work: Path, wanted: list[str]) -> dict[str, Target]:
    """Every server option by name; ``wanted`` picks some."""
    before, after = labs["before"], labs["after"]
    targets = {
        "before": gunicorn_target(before, "before: as shipped (2 sync workers)", "lr"),
        "shipped": gunicorn_target(after, "after: as shipped (2 gevent workers, keep-alive 5 s)", "lr"),
        "sync": gunicorn_target(after, "after's code, 2 sync workers", "lr", "--worker-class sync"),
        "gevent-no-keepalive": gunicorn_target(after, "after, gevent without keep-alive", "lr", "--keep-alive 0"),
        "gthread": gunicorn_target(
            after, "after's code, gthread 2 x 8 threads", "lr", "--worker-class gthread --threads 8"
        ),
        "waitress": waitress_target(after, "lr"),
    }
    nginx = nginx_target(after, "lr", work)
    if nginx:
        targets["nginx"] = nginx
    return {name: targets[name] for name in wanted if name in targets}


# ---------------------------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------------------------
def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request on a new connection: (status, answer); status 0 when nothing answered in time."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT)
    try:
        connection.request(method, path, body, {"Content-Type": "application/json"} if body is not None else {})
        response = connection.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        connection.close()


def trickle(port: int, start: bytes, stop: threading.Event, held: list) -> None:
    """A slow client: the start of a request, then one byte every SLOW_INTERVAL until stopped or cut off."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as connection:
            connection.sendall(start)
            held.append(1)
            while not stop.wait(SLOW_INTERVAL):
                connection.sendall(b"a")
    except OSError:
        held.append(-1)


def slow_clients(port: int, body: bytes, count: int, seconds: float) -> dict:
    """Hold ``count`` slow connections while probing /health and /predict for ``seconds``; latencies and failures."""
    heads = [
        b"POST /predict HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
        b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 999\r\n\r\n",
    ]
    stop, held = threading.Event(), []
    threads = [
        threading.Thread(target=trickle, args=(port, heads[n % 2], stop, held), daemon=True) for n in range(count)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    latencies, failures, deadline, number = [], 0, time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        number += 1
        started = time.monotonic()
        status, _ = request(port, "GET", "/health") if number % 2 else request(port, "POST", "/predict", body)
        latencies.append(time.monotonic() - started)
        failures += status != 200
    cut_off = sum(1 for value in held if value < 0)
    stop.set()
    for thread in threads:
        thread.join(PROBE_TIMEOUT)
    latencies.sort()
    return {
        "probes": len(latencies),
        "failed": failures,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "max_ms": latencies[-1] * 1000,
        "slow_connected": sum(1 for value in held if value > 0),
        "slow_cut_off": cut_off,
    }


def hostile(port: int, pid: int, index: Path, repeat: int) -> dict:
    """Server CPU per request and answer size for each hostile body."""
    results = {}
    for name, path in json.loads(index.read_text())["bodies"].items():
        body = Path(path).read_bytes()
        before = cpu_seconds(pid)
        statuses, size = set(), 0
        for _ in range(repeat):
            status, answer = request(port, "POST", "/predict", body)
            statuses.add(status)
            size = len(answer)
        results[name] = {
            "cpu_ms": (cpu_seconds(pid) - before) / repeat * 1000,
            "status": "/".join(str(status) for status in sorted(statuses)),
            "answer_bytes": size,
            "body_bytes": len(body),
        }
    return results


def measure(target: Target, lab: Lab, work: Path, args: argparse.Namespace, shipped: bool) -> dict:
    """Start a target; cold start, throughput, slow clients and (for a shipped one) hostile bodies; stop it."""
    body = target.one.read_bytes()
    with Server(target, work) as server:
        cold = server.start()
        port, pid = server.port, server.process.pid
        wrk(server.url, target.one, 16, 1)
        loaded = wrk(server.url, target.one, 16, args.duration, server=pid)
        result = {
            "cold_start_s": cold,
            "rps": loaded.requests_per_s,
            "cpu_us": loaded.server_cpu_s / loaded.requests * 1e6,
            "wrk_failed": loaded.failed,
            "slow": slow_clients(port, body, args.slow, args.duration),
        }
        if shipped:
            result["hostile"] = hostile(port, pid, work / "after" / "hostile" / "index.json", args.hostile_repeat)
    return result


def measure_hgb(target: Target, lab: Lab, work: Path, seconds: int) -> dict:
    """Throughput of the same server with the HistGradientBoosting model (the OpenMP figure)."""
    hgb = Target(
        target.name + "-hgb",
        target.label,
        target.command,
        target.path,
        target.one,
        target.batch,
        env={
            **target.env,
            "MODEL_REGISTRY": str(lab.registries["hgb"]),
            "PYTHONPATH": str(serving.hgb_src(lab.project)),
        },
    )
    with Server(hgb, work) as server:
        server.start()
        wrk(server.url, hgb.one, 16, 1)
        loaded = wrk(server.url, hgb.one, 16, seconds, server=server.process.pid)
    return {"rps": loaded.requests_per_s, "cpu_us": loaded.server_cpu_s / loaded.requests * 1e6}


def unscorable(lab: Lab, work: Path, repeat: int) -> dict:
    """CPU per request of 1,000 valid rows the unbounded model cannot score (the 422 path that bisects)."""
    target = gunicorn_target(lab, "unbounded", "unbounded")
    body = (lab.work / "hostile" / "extreme.json").read_bytes()
    with Server(target, work) as server:
        server.start()
        before, statuses = cpu_seconds(server.process.pid), set()
        for _ in range(repeat):
            status, answer = request(server.port, "POST", "/predict", body)
            statuses.add(status)
        cpu = (cpu_seconds(server.process.pid) - before) / repeat * 1000
    return {
        "cpu_ms": cpu,
        "status": "/".join(map(str, sorted(statuses))),
        "answer_bytes": len(answer),
        "body_bytes": len(body),
    }


def model_load_seconds(lab: Lab) -> float:
    """Median seconds of artifact.load of the production model, each in a fresh process."""
    package = serving.package_of(lab.project)
    code = (
        "import sys, time; from pathlib import Path; start = time.perf_counter(); "
        f"from {package} import artifact; artifact.load(Path(sys.argv[1])); print(time.perf_counter() - start)"
    )
    times = [
        float(run([lab.python, "-c", code, serving.production_folder(lab, "lr")], env=server_env())) for _ in range(3)
    ]
    return statistics.median(times)


def bare_flask_cold_start(lab: Lab, work: Path) -> float:
    """Cold start of the bare Flask app (serving.py's) with the same model, under gunicorn with 2 sync workers."""
    command = [lab.python, "-m", "gunicorn", "--workers", "2", "--bind", "127.0.0.1:{port}", "--pythonpath", BENCH]
    command.append("serving:bare_flask_app()")
    env = server_env({"BENCH_MODEL": str(serving.production_folder(lab, "lr")), "XDG_RUNTIME_DIR": str(lab.work)})
    target = Target(
        "bare-flask", "bare Flask", command, "/predict", lab.bodies / "one.json", lab.bodies / "batch.json", env=env
    )
    with Server(target, work) as server:
        return server.start()


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------
def med(values) -> float:
    """Median."""
    return statistics.median(list(values))


def report(targets: dict[str, Target], results: dict[str, list[dict]], extra: dict) -> str:
    """Markdown tables of medians."""
    lines = [
        "| server | slow clients held | probes, failed | p50 ms | p99 ms | max ms | 1-row req/s, 16 conn "
        "| CPU µs/req | cold start s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, runs in results.items():
        slow = [run["slow"] for run in runs]
        lines.append(
            f"| {targets[name].label} | {med(s['slow_connected'] for s in slow):.0f} of {extra['slow']} "
            f"(cut off {med(s['slow_cut_off'] for s in slow):.0f}) "
            f"| {med(s['probes'] for s in slow):.0f}, {sum(s['failed'] for s in slow)} "
            f"| {med(s['p50_ms'] for s in slow):.1f} | {med(s['p99_ms'] for s in slow):.1f} "
            f"| {med(s['max_ms'] for s in slow):.0f} | {med(run['rps'] for run in runs):,.0f} "
            f"| {med(run['cpu_us'] for run in runs):,.0f} | {med(run['cold_start_s'] for run in runs):.2f} |"
        )
    out = ["\n".join(lines)]
    if "before" in results and "shipped" in results:
        ratio = med(r["rps"] for r in results["shipped"]) / med(r["rps"] for r in results["before"])
        cpu = med(r["cpu_us"] for r in results["shipped"]) / med(r["cpu_us"] for r in results["before"])
        pairs = [a["rps"] / b["rps"] for a, b in zip(results["shipped"], results["before"], strict=True)]
        out.append(
            f"\nthroughput after / before (same run): {ratio:.2f} by median req/s (per repetition "
            f"{', '.join(f'{p:.2f}' for p in pairs)}); CPU per request after / before {cpu:.2f}"
        )
        hostile_lines = [
            "| hostile body | size | before: status, CPU ms, answer bytes | after: status, CPU ms, answer bytes |",
            "|---|--:|--:|--:|",
        ]
        for body in results["shipped"][0]["hostile"]:
            cells = []
            for name in ("before", "shipped"):
                runs = [run["hostile"][body] for run in results[name]]
                cells.append(f"{runs[0]['status']}, {med(r['cpu_ms'] for r in runs):.1f}, {runs[0]['answer_bytes']:,}")
            hostile_lines.append(
                f"| {body} | {results['shipped'][0]['hostile'][body]['body_bytes']:,} | {cells[0]} | {cells[1]} |"
            )
        if extra.get("unscorable"):
            u = extra["unscorable"]
            hostile_lines.append(
                f"| 1,000 valid rows the model cannot score (unbounded features) | {u[0]['body_bytes']:,} | (a 500) "
                f"| {u[0]['status']}, {med(x['cpu_ms'] for x in u):.1f}, {u[0]['answer_bytes']:,} |"
            )
        out.append("\n" + "\n".join(hostile_lines))
    if extra.get("hgb"):
        hgb = extra["hgb"]
        before, after = med(r["rps"] for r in hgb["before"]), med(r["rps"] for r in hgb["shipped"])
        out.append(
            f"\nHistGradientBoosting (OpenMP figure): before {before:,.0f} req/s "
            f"({med(r['cpu_us'] for r in hgb['before']):,.0f} µs/req), after {after:,.0f} req/s "
            f"({med(r['cpu_us'] for r in hgb['shipped']):,.0f} µs/req): after / before {after / before:.2f}"
        )
    if extra.get("cold"):
        cold = extra["cold"]
        out.append(
            f"\ncold start to the first 200 from /predict: bare Flask {med(cold['bare']):.2f} s; model load in "
            f"process {cold['load']:.2f} s; before {med(r['cold_start_s'] for r in results['before']):.2f} s; "
            f"after {med(r['cold_start_s'] for r in results['shipped']):.2f} s"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Prepare both labs, then measure every option ``--repeat`` times in turn and print the tables."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in HELPERS:
        HELPERS[argv[0]](*argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the template before the change")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-slow-clients"))
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run and per slow-client probe run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slow", type=int, default=100, help="slow connections held during the probes")
    parser.add_argument("--hostile-repeat", type=int, default=5)
    parser.add_argument("--options", default="before,shipped,sync,gevent-no-keepalive,gthread,waitress,nginx")
    parser.add_argument("--json", type=Path, help="also write every raw measurement here")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("ERROR: wrk is not installed: apt-get install -y wrk")
    work = args.work.resolve()
    labs = prepare(work, args.before.resolve())
    targets = make_targets(labs, work, args.options.split(","))
    results: dict[str, list[dict]] = {name: [] for name in targets}
    extra: dict = {"slow": args.slow, "hgb": {"before": [], "shipped": []}, "cold": {"bare": []}, "unscorable": []}
    for repetition in range(1, args.repeat + 1):
        for name, target in targets.items():
            say(f"repetition {repetition}/{args.repeat}: {name}")
            lab = labs["before" if name == "before" else "after"]
            results[name].append(measure(target, lab, work, args, shipped=name in ("before", "shipped")))
            say(f"  {json.dumps(results[name][-1])[:600]}")
            if name in ("before", "shipped"):
                extra["hgb"][name].append(measure_hgb(target, lab, work, args.duration))
        extra["cold"]["bare"].append(bare_flask_cold_start(labs["after"], work))
        extra["unscorable"].append(unscorable(labs["after"], work, args.hostile_repeat))
    extra["cold"]["load"] = model_load_seconds(labs["after"])
    print(f"{args.repeat} repetitions, {args.duration} s runs, medians; {serving.machine_note()}\n")
    print(report(targets, results, extra))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "extra": extra}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
