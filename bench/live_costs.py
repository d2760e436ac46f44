"""What the prediction log and the shadow model cost the service, and whether a /metrics scrape parses.

Usage (from the template repository, with wrk installed: `apt-get install -y wrk`):

    python bench/live_costs.py                      # 5 repetitions of 5 s runs per configuration (about 6 minutes)
    python bench/live_costs.py --duration 10 --repeat 3

It reuses serving.py's set-up in ``--work`` (default /tmp/bench-live: a default bake of this template, its venv
and its production model), copies that registry and promotes a second version over the first, so that
``MODEL_SHADOW=previous`` has a model to score. Then, in each repetition, it starts the generated service as
shipped (`<slug> serve`, 2 gunicorn workers) once per configuration, in turn:

* prediction log off / in a folder / on stdout (redirected to a file), without a shadow;
* log off and log in a folder, with the shadow (the previous production model).

and measures 1-row requests/s at 16 connections (wrk -t2 -c16), the server's CPU time per request (the sum over
gunicorn's processes: unlike requests/s it hardly depends on what else the machine runs), and p50 latency at one
connection. Each configuration is compared with "log off, no shadow" of the same repetition; the table shows
medians. The shadow's latency budget is its own model's predict_proba on one row (timed in process, in the same
run) plus 0.1 ms; the script prints whether the extra p50 stays inside it. Last, it scrapes /metrics of the
folder + shadow server and parses it with prometheus_client.parser.text_string_to_metric_families (in the
project venv), checking that the requests counted add up to what wrk sent.
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
SHADOW_EXTRA_MS = 0.1  # the shadow's latency budget: its predict_proba on the request's rows plus this
CONFIGS = {
    "log off": {"PREDICTION_LOG": "off"},
    "log folder": {"PREDICTION_LOG": "{work}/predictions"},
    "log stdout": {"PREDICTION_LOG": "stdout"},
    "shadow, log off": {"PREDICTION_LOG": "off", "MODEL_SHADOW": "previous"},
    "shadow, log folder": {"PREDICTION_LOG": "{work}/predictions", "MODEL_SHADOW": "previous"},
}


def promote_second(project: Path, registry_root: Path) -> None:
    """(project venv) Train a week-1 model and promote it over the week-0 production model."""
    package = serving.package_of(project)
    modules = {name: importlib.import_module(f"{package}.{name}") for name in ("train", "pipeline", "config")}
    registry = importlib.import_module(f"{package}.registry").Registry(registry_root)
    settings = modules["config"].load_settings()
    week1 = modules["pipeline"].week_files(settings, 1)
    if not week1[0].is_file():
        week1 = modules["pipeline"].write_week(settings, 1)
    folder, metadata = modules["train"].train(*week1, project / "artifacts-live", seed=0)
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


def measure(lab: serving.Lab, root: Path, name: str, seconds: int, scrape_it: bool) -> dict:
    """Start one configuration, run wrk at 16 and at 1 connection, optionally scrape /metrics; stop it."""
    shutil.rmtree(lab.work / "predictions", ignore_errors=True)
    with serving.Server(target(lab, root, name), lab.work) as server:
        server.start()
        pid = server.process.pid
        loaded = serving.wrk(server.url, lab.bodies / "one.json", 16, seconds, server=pid)
        single = serving.wrk(server.url, lab.bodies / "one.json", 1, seconds, latency=True)
        result = {
            "rps": loaded.requests_per_s,
            "cpu_us": 1e6 * loaded.server_cpu_s / max(loaded.requests, 1),
            "p50_ms": single.p50_ms,
            "failed": loaded.failed + single.failed,
            "sent": loaded.requests + single.requests,
        }
        if scrape_it:
            time.sleep(0.5)
            metrics_url = server.url.replace("/predict", "/metrics")
            out = serving.run([lab.python, __file__, "_scrape", metrics_url], cwd=lab.project, env=serving.server_env())
            result["scrape"] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    """Set up once, measure every configuration ``--repeat`` times in turn, print the Markdown results."""
    argv = sys.argv[1:] if argv is None else argv
    helpers = {"_promote_second": lambda p, r: promote_second(Path(p), Path(r)), "_scrape": scrape}
    if argv and argv[0] in helpers:
        helpers[argv[0]](*argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-live"), help="bake, venv and logs")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions; the table shows medians (default 5)")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("ERROR: wrk is not installed: apt-get install -y wrk")
    lab = serving.prepare_lab(args.work.resolve(), with_mlflow=False)
    (lab.work / "run").mkdir(exist_ok=True)
    root = prepare_registry(lab)
    inproc = serving.in_process_times(lab, seconds=1.0)
    runs: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    for repetition in range(1, args.repeat + 1):
        for name in CONFIGS:
            serving.say(f"repetition {repetition}/{args.repeat}: {name}")
            last = repetition == args.repeat and name == "shadow, log folder"
            runs[name].append(measure(lab, root, name, args.duration, scrape_it=last))
            serving.say(f"  {json.dumps(runs[name][-1])}")
    print(report(runs, inproc, args))
    return 0


def report(runs: dict[str, list[dict]], inproc: dict[str, dict[int, float]], args: argparse.Namespace) -> str:
    """The Markdown table of medians and ratios, the budgets' verdicts and the scrape check."""
    base = runs["log off"]

    def median_ratio(name: str, key: str) -> float:
        return statistics.median(run[key] / ref[key] for run, ref in zip(runs[name], base, strict=True))

    lines = [
        f"wrk {args.duration} s per run, {args.repeat} repetitions, medians; {serving.machine_note()}",
        "",
        "| configuration | 1-row req/s (c16) | vs log off | server CPU per request | vs log off | p50 at c1 | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, measured in runs.items():
        rps = statistics.median(run["rps"] for run in measured)
        cpu = statistics.median(run["cpu_us"] for run in measured)
        p50 = statistics.median(run["p50_ms"] for run in measured)
        failed = sum(run["failed"] for run in measured)
        lines.append(
            f"| {name} | {rps:,.0f} | {median_ratio(name, 'rps'):.3f} | {cpu:,.0f} µs "
            f"| {median_ratio(name, 'cpu_us'):.3f} | {p50:.2f} ms | {failed} |"
        )
    lines.append("")
    for name in ("log folder", "log stdout"):
        cost = 1 - median_ratio(name, "rps")
        verdict = "within" if cost <= LOGGING_BUDGET else "OVER"
        lines.append(f"- {name}: costs {cost:.1%} of 1-row throughput ({verdict} the {LOGGING_BUDGET:.0%} budget)")
    predict_ms = inproc["lr"][1] * 1000  # the shadow is the default (logistic regression) model of week 0
    budget = predict_ms + SHADOW_EXTRA_MS
    extra = statistics.median(
        run["p50_ms"] - ref["p50_ms"] for run, ref in zip(runs["shadow, log off"], base, strict=True)
    )
    verdict = "within" if extra <= budget else "OVER"
    lines.append(
        f"- shadow: adds {extra:.3f} ms to the 1-row p50 (budget: its predict_proba on 1 row, {predict_ms:.3f} ms, "
        f"+ {SHADOW_EXTRA_MS} ms = {budget:.3f} ms: {verdict}); costs {1 - median_ratio('shadow, log off', 'rps'):.1%} "
        "of 1-row throughput"
    )
    scraped = next((run["scrape"] for run in runs["shadow, log folder"] if "scrape" in run), None)
    if scraped:
        sent = runs["shadow, log folder"][-1]["sent"]
        # the scrape also counts the start-up probes of Server.start() (a few 200s before wrk begins)
        lines.append(
            f"- /metrics scrape parsed by prometheus_client.parser: {scraped['families']} families, "
            f"{scraped['samples']} samples; /predict requests counted {scraped['predict']:,.0f}, wrk sent {sent:,}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
