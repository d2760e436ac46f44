"""What the prediction log and the shadow model cost the service, and whether a /metrics scrape parses.

Usage (from the template repository, with wrk installed: `apt-get install -y wrk`):

    python bench/live_costs.py                      # 5 rounds of 5 s runs per configuration (about 6 minutes)
    python bench/live_costs.py --duration 10 --repeat 3

It reuses serving.py's set-up in ``--work`` (default /tmp/bench-live: a bake of this template with the production
loop's layer (production_loop=true), its venv
and its production model; delete the folder after changing the template), copies that registry and promotes a
week-1 model over the week-0 one, so that ``MODEL_SHADOW=previous`` has a model to score. It starts the generated
service as shipped (`<slug> serve`, 2 gunicorn workers) once per configuration, all side by side:

* prediction log off / in a folder / on stdout (redirected to a file), without a shadow;
* log in a folder, with the shadow (the previous production model; the shadow scores only for the log),

warms each up, then measures them in turn, ``--repeat`` rounds: 1-row requests/s at 16 connections (wrk -t2
-c16), the server's CPU time per request (summed over gunicorn's processes) and p50 latency at one connection.
Each configuration is compared with "log off" of the same round; the table shows medians of those ratios. Before
that, it measures CPU time per 1-row request through each configuration's WSGI app in one process (process CPU, so
the log's writer thread counts), in rotating order. On a shared machine requests/s follows whatever else runs,
so the verdict on the 10% budget is: the log's extra CPU per request (in process) over the whole server's CPU per
request without a log (under gunicorn), since a CPU-bound server's throughput is cores / CPU per request.
The shadow's budget is its model's predict_proba on one row (timed in process, in the same run) plus 0.1 ms of
CPU per request over the log alone (the log's writer scores it for many requests at once). Last, it scrapes
/metrics of the shadow + folder server and parses it with prometheus_client.parser.text_string_to_metric_families in
the project venv.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import serving

LOGGING_BUDGET = 0.10  # the log may cost at most 10% of 1-row throughput
SHADOW_EXTRA_MS = 0.1  # the shadow's CPU budget per request: its predict_proba on the request's rows plus this
REQUESTS_IN_APP = 500  # requests per configuration and round of the in-process measurement
CONFIGS = {
    "log off": {"PREDICTION_LOG": "off"},
    "log folder": {"PREDICTION_LOG": "{work}/predictions"},
    "log stdout": {"PREDICTION_LOG": "stdout"},
    "shadow, log folder": {"PREDICTION_LOG": "{work}/predictions", "MODEL_SHADOW": "previous"},
}


def promote_second(project: Path, registry_root: Path) -> None:
    """(project venv) Train a week-1 model and promote it over the week-0 production model."""
    package = serving.package_of(project)
    modules = {name: importlib.import_module(f"{package}.{name}") for name in ("train", "data", "config")}
    registry = importlib.import_module(f"{package}.registry").Registry(registry_root)
    week1 = modules["data"].prepare(modules["config"].load_settings(), week=1)
    folder, metadata = modules["train"].train(week1.train, week1.holdout, project / "artifacts-live", seed=0)
    registry.register(folder, reason="live cost benchmark: week 1")
    registry.promote(metadata["version"], "production", reason="live cost benchmark: week 1")


def scrape(url: str) -> None:
    """(project venv) Parse /metrics with prometheus-client's parser; print the families and the request count."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url, timeout=10).read().decode()
    families = list(text_string_to_metric_families(text))
    predicted = sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name.endswith("_requests_total") and sample.labels.get("endpoint") == "/predict"
    )
    samples = sum(len(family.samples) for family in families)
    print(json.dumps({"families": len(families), "samples": samples, "predict": predicted}))


def in_app(registry_root: Path, work: Path, rounds: int) -> None:
    """(project venv) CPU per request through each configuration's WSGI app in this process; print it as JSON.

    Process CPU time counts every thread, the log's writer included; the rounds take the configurations in a
    rotating order, and each round waits for the writer to catch up before its clock stops.
    """
    import io
    import os
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(dir=work)  # as under gunicorn, set before the import
    service = importlib.import_module(f"{serving.package_of(Path.cwd())}.service")
    body = (work / "bodies" / "one.json").read_bytes()
    results, out = {name: [] for name in CONFIGS}, os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the stdout sink writes to fd 1
    apps = {}
    for name, config in CONFIGS.items():
        config = {key: value.format(work=work / "in-app") for key, value in config.items()}
        apps[name] = service.create_app({"REGISTRY": str(registry_root), **config})

    def call(app) -> None:
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/predict", "SERVER_NAME": "bench", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        }  # fmt: skip
        b"".join(app(environ, lambda status, headers, exc_info=None: None))

    names = list(CONFIGS)
    for number in range(rounds + 1):  # round 0 warms up
        for name in names[number % len(names) :] + names[: number % len(names)]:
            started = time.process_time()
            for _ in range(REQUESTS_IN_APP):
                call(apps[name].wsgi_app)
            log = apps[name].extensions["predictions"].log
            while log is not None and log._waiting:  # the writer's CPU for this round's rows belongs to this round
                time.sleep(0.01)
            time.sleep(0.05)
            spent = time.process_time() - started
            if number:
                results[name].append(1e6 * spent / REQUESTS_IN_APP)
    os.write(out, (json.dumps(results) + "\n").encode())


def prepare_registry(lab: serving.Lab) -> Path:
    """A copy of the lab's registry where a second version replaced the first in production."""
    root = lab.work / "live-registry"
    if not root.exists():
        serving.say("promoting a week-1 model over the week-0 one, for the shadow")
        shutil.copytree(lab.registries["lr"], root)
        serving.run(
            [lab.python, __file__, "_promote_second", lab.project, root], cwd=lab.project, env=serving.server_env()
        )
    return root


def target(lab: serving.Lab, root: Path, name: str) -> serving.Target:
    """The shipped service on ``root`` with one configuration's environment; stdout goes to its log file."""
    extra = {key: value.format(work=lab.work) for key, value in CONFIGS[name].items()}
    env = serving.server_env({"MODEL_REGISTRY": str(root), "XDG_RUNTIME_DIR": str(lab.work / "run"), **extra})
    command = [lab.script, "serve", "--port", "{port}", "--workers", "2"]
    one, batch = lab.bodies / "one.json", lab.bodies / "batch.json"
    return serving.Target(name, name, command, "/predict", one, batch, cwd=lab.project, env=env)


def measure(server: serving.Server, lab: serving.Lab, seconds: int) -> dict:
    """One round on a running server: wrk at 16 connections (requests/s, server CPU) and at 1 (p50)."""
    loaded = serving.wrk(server.url, lab.bodies / "one.json", 16, seconds, server=server.process.pid)
    single = serving.wrk(server.url, lab.bodies / "one.json", 1, seconds, latency=True)
    return {
        "rps": loaded.requests_per_s,
        "cpu_us": 1e6 * loaded.server_cpu_s / max(loaded.requests, 1),
        "p50_ms": single.p50_ms,
        "failed": loaded.failed + single.failed,
    }


def scrape_metrics(lab: serving.Lab, server: serving.Server) -> dict:
    """Parse the server's /metrics in the project venv; return what scrape() printed."""
    url = server.url.replace("/predict", "/metrics")
    out = serving.run([lab.python, __file__, "_scrape", url], cwd=lab.project, env=serving.server_env())
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Set up once, start every configuration, measure them in turn ``--repeat`` times, print the results."""
    argv = sys.argv[1:] if argv is None else argv
    helpers = {
        "_promote_second": lambda p, r: promote_second(Path(p), Path(r)),
        "_scrape": scrape,
        "_in_app": lambda r, w, n: in_app(Path(r), Path(w), int(n)),
    }
    if argv and argv[0] in helpers:
        helpers[argv[0]](*argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-live"), help="bake, venv and logs")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the table shows medians (default 5)")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("ERROR: wrk is not installed: apt-get install -y wrk")
    lab = serving.prepare_lab(args.work.resolve(), with_mlflow=False, answers=("production_loop=true",))
    (lab.work / "run").mkdir(exist_ok=True)
    shutil.rmtree(lab.work / "predictions", ignore_errors=True)
    root = prepare_registry(lab)
    inproc = serving.in_process_times(lab, seconds=1.0)
    serving.say(f"CPU per request in process, {args.repeat * 2} rounds")
    out = serving.run(
        [lab.python, __file__, "_in_app", root, lab.work, args.repeat * 2], cwd=lab.project, env=serving.server_env()
    )
    in_app_us = json.loads(out.strip().splitlines()[-1])
    runs: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    servers = {name: serving.Server(target(lab, root, name), lab.work) for name in CONFIGS}
    try:
        for name, server in servers.items():
            serving.say(f"starting and warming up: {name}")
            server.start()
            serving.wrk(server.url, lab.bodies / "one.json", 16, 2)  # both workers answer, and load their models
        for repetition in range(1, args.repeat + 1):
            for name, server in servers.items():  # in turn, so that every round compares the same moment's load
                serving.say(f"round {repetition}/{args.repeat}: {name}")
                runs[name].append(measure(server, lab, args.duration))
                serving.say(f"  {json.dumps(runs[name][-1])}")
        scraped = scrape_metrics(lab, servers["shadow, log folder"])
        logged = sum(1 for path in (lab.work / "predictions").glob("*.jsonl") for _ in path.open())
    finally:
        for server in servers.values():
            server.stop()
    print(report(runs, in_app_us, inproc, args, scraped, logged))
    return 0


def report(
    runs: dict[str, list[dict]],
    in_app_us: dict[str, list[float]],
    inproc: dict,
    args: argparse.Namespace,
    scraped: dict,
    logged: int,
) -> str:
    """The Markdown tables of medians and ratios, the budgets' verdicts and the scrape check."""

    def ratio(values: dict[str, list], name: str, key=None, inverse: bool = False) -> float:
        """Median over the rounds of a configuration's value over "log off"'s in the same round."""
        rounds = zip(values[name], values["log off"], strict=True)
        pairs = [(v, ref) if key is None else (v[key], ref[key]) for v, ref in rounds]
        return statistics.median(ref / v if inverse else v / ref for v, ref in pairs)

    lines = [
        f"{serving.machine_note()}",
        "",
        f"In process ({len(in_app_us['log off'])} rounds of {REQUESTS_IN_APP} requests per configuration):",
        "",
        "| configuration | CPU per request | throughput vs log off |",
        "|---|---|---|",
    ]
    for name, values in in_app_us.items():
        lines.append(f"| {name} | {statistics.median(values):,.0f} µs | {ratio(in_app_us, name, inverse=True):.3f} |")
    lines += [
        "",
        f"Under gunicorn (wrk {args.duration} s per run, {args.repeat} rounds, medians):",
        "",
        "| configuration | 1-row req/s (c16) | vs log off | server CPU per request | vs log off, from CPU "
        "| p50 at c1 | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, measured in runs.items():
        rps, cpu, p50 = (statistics.median(run[key] for run in measured) for key in ("rps", "cpu_us", "p50_ms"))
        lines.append(
            f"| {name} | {rps:,.0f} | {ratio(runs, name, 'rps'):.3f} | {cpu:,.0f} µs "
            f"| {ratio(runs, name, 'cpu_us', True):.3f} | {p50:.2f} ms | {sum(run['failed'] for run in measured)} |"
        )
    lines.append("")
    server_us = statistics.median(run["cpu_us"] for run in runs["log off"])
    for name in ("log folder", "log stdout"):
        # a CPU-bound server's throughput is cores / CPU per request: what the log adds, over the whole server's cost
        extra = statistics.median(v - off for v, off in zip(in_app_us[name], in_app_us["log off"], strict=True))
        cost = extra / (server_us + extra)
        verdict = "within" if cost <= LOGGING_BUDGET else "OVER"
        lines.append(
            f"- {name}: adds {extra:.0f} µs of CPU per 1-row request (in process, writer thread included) to the "
            f"{server_us:,.0f} µs the whole server spends on one without a log (under gunicorn): "
            f"{cost:.1%} of 1-row throughput ({verdict} the {LOGGING_BUDGET:.0%} budget). In process alone "
            f"{1 - ratio(in_app_us, name, inverse=True):.1%}; under gunicorn {1 - ratio(runs, name, 'rps'):.1%} by "
            f"requests/s, {1 - ratio(runs, name, 'cpu_us', True):.1%} by CPU"
        )
    predict_ms = inproc["lr"][1] * 1000  # the shadow is the default (logistic regression) model of week 0
    budget = predict_ms + SHADOW_EXTRA_MS
    extra_cpu = statistics.median(
        shadow - log for shadow, log in zip(in_app_us["shadow, log folder"], in_app_us["log folder"], strict=True)
    )
    extra_p50 = statistics.median(
        shadow["p50_ms"] - log["p50_ms"]
        for shadow, log in zip(runs["shadow, log folder"], runs["log folder"], strict=True)
    )
    verdict = "within" if extra_cpu / 1000 <= budget else "OVER"
    lines.append(
        f"- shadow: adds {extra_cpu / 1000:.3f} ms of CPU per 1-row request to the log, in process ({verdict} "
        "its budget: "
        f"predict_proba on 1 row, {predict_ms:.3f} ms in process, + {SHADOW_EXTRA_MS} ms = {budget:.3f} ms); "
        f"{extra_p50:+.3f} ms to the p50 at one connection under gunicorn; throughput "
        f"{ratio(in_app_us, 'shadow, log folder', inverse=True):.3f} of log off in process"
    )
    lines.append(
        f"- /metrics of the shadow + folder server, parsed by prometheus_client.parser: {scraped['families']} "
        f"families, {scraped['samples']} samples; it counted {scraped['predict']:,.0f} /predict requests, and the "
        f"log folder (shared by both log-folder servers) holds {logged:,} rows"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
