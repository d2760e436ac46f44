"""Hot swap under load: failed requests and tail latency while production is promoted and rolled back 100 times.

Usage (from the template repository, with wrk installed: `apt-get install -y wrk`):

    python bench/swap_under_load.py                  # 100 swaps, 0.6 s apart, under wrk -c16 (about 2 minutes)
    python bench/swap_under_load.py --swaps 300 --interval 0.2

It reuses serving.py's set-up in ``--work`` (a default bake, its venv and its production model), copies that
registry, registers a second version (the same data, seed 1) and starts the generated service as shipped
(`<slug> serve`) on it. Then, under 16 connections of wrk posting one transaction:

1. a baseline run with no swaps, as long as the swap run;
2. the swap run: a helper in the project venv alternates ``Registry.promote(second, "production")`` and
   ``Registry.rollback()`` (what the `promote` and `rollback` commands call) ``--swaps`` times, ``--interval``
   seconds apart, longer than the service's 0.5 s reload interval so every worker sees every version.

It prints failed requests (non-2xx responses and socket errors), p50/p99/p99.9/max latency of both runs, and
how many times the workers logged that they swapped in a model.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import serving

SERVICE_RELOAD_INTERVAL = 0.5  # service.create_app's RELOAD_INTERVAL


def second_version(project: Path, registry_root: Path) -> None:
    """(project venv) Train the week-0 model again with seed 1 and register it next to production."""
    package = serving.package_of(project)
    train = importlib.import_module(f"{package}.train")
    synthetic = importlib.import_module(f"{package}.synthetic")
    config = importlib.import_module(f"{package}.config")
    registry = importlib.import_module(f"{package}.registry")
    train_csv, holdout_csv = synthetic.week_files(config.load_settings().data_dir, 0)
    folder, _ = train.train(train_csv, holdout_csv, project / "artifacts-swap", seed=1)
    registry.Registry(registry_root).register(folder, reason="swap benchmark: second version")


def swap(project: Path, registry_root: Path, swaps: int, interval: float) -> None:
    """(project venv) Alternate promoting the other version and rolling back, ``swaps`` times in all."""
    registry = importlib.import_module(f"{serving.package_of(project)}.registry").Registry(registry_root)
    production = registry.current("production")
    (other,) = [version for version in registry.versions() if version != production]
    for number in range(swaps):
        started = time.monotonic()
        if number % 2 == 0:
            registry.promote(other, "production", reason=f"swap benchmark {number}")
        else:
            registry.rollback(reason=f"swap benchmark {number}")
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    print(registry.current("production"))


def prepare_registry(lab: serving.Lab) -> Path:
    """A copy of the lab's production registry holding a second registered version."""
    root = lab.work / "swap-registry"
    if not root.exists():
        serving.say("registering a second version for the swaps")
        shutil.copytree(lab.registries["lr"], root)
        serving.run(
            [lab.python, __file__, "_second_version", lab.project, root], cwd=lab.project, env=serving.server_env()
        )
    return root


def wrk_under_swaps(lab: serving.Lab, server: serving.Server, root: Path, args) -> serving.WrkResult:
    """Run wrk for as long as the swaps take, with the swapper running beside it."""
    seconds = int(args.swaps * args.interval) + 3
    swapper = subprocess.Popen(
        [str(part) for part in (lab.python, __file__, "_swap", lab.project, root, args.swaps, args.interval)],
        cwd=lab.project,
        env=serving.server_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        result = serving.wrk(server.url, lab.bodies / "one.json", args.connections, seconds, latency=True)
        swapper.wait(timeout=60)
    finally:
        if swapper.poll() is None:
            swapper.kill()
            swapper.wait()
    if swapper.returncode:
        raise SystemExit(f"ERROR: the swapper exited with {swapper.returncode}")
    return result


def row(name: str, result: serving.WrkResult) -> str:
    """One Markdown table row."""
    return (
        f"| {name} | {result.requests:,} | {result.failed:,} | {serving.fmt(result.requests_per_s)} "
        f"| {serving.fmt(result.p50_ms, 2)} | {serving.fmt(result.p99_ms, 2)} | {serving.fmt(result.p999_ms, 1)} "
        f"| {serving.fmt(result.max_ms, 1)} |"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-serving"), help="as serving.py --work")
    parser.add_argument("--swaps", type=int, default=100, help="promotions plus rollbacks (default 100)")
    parser.add_argument("--interval", type=float, default=0.6, help="seconds between swaps (default 0.6)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure the baseline and the swap run on one server; print the Markdown result."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_second_version":
        second_version(Path(argv[1]), Path(argv[2]))
        return 0
    if argv and argv[0] == "_swap":
        swap(Path(argv[1]), Path(argv[2]), int(argv[3]), float(argv[4]))
        return 0
    args = parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("ERROR: wrk is not installed: apt-get install -y wrk")
    if args.interval <= SERVICE_RELOAD_INTERVAL:
        print(
            f"note: swaps closer than {SERVICE_RELOAD_INTERVAL} s apart are partly invisible to the service",
            file=sys.stderr,
        )
    lab = serving.prepare_lab(args.work.resolve(), with_mlflow=False)
    root = prepare_registry(lab)
    target = serving.make_targets(lab, tune=False)["shipped-lr"]
    target.env["MODEL_REGISTRY"] = str(root)
    seconds = int(args.swaps * args.interval) + 3
    with serving.Server(target, lab.work) as server:
        server.start()
        serving.wrk(server.url, target.one, args.connections, 1)  # warm-up
        serving.say(f"baseline: {seconds} s without swaps")
        baseline = serving.wrk(server.url, target.one, args.connections, seconds, latency=True)
        serving.say(f"{args.swaps} swaps, {args.interval} s apart, under load")
        swapped = wrk_under_swaps(lab, server, root, args)
    loads = server.log.read_text().count("serving production model")
    print(
        f"wrk -c{args.connections}, {args.swaps} swaps (promote / rollback alternately) {args.interval} s apart; "
        f"{serving.machine_note()}\n"
    )
    print("| run | requests | failed | req/s | p50 ms | p99 ms | p99.9 ms | max ms |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    print(row("no swaps", baseline))
    print(row(f"{args.swaps} swaps", swapped))
    print(f"\nmodel loads logged by the workers: {loads} (initial load + swaps seen, per worker)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
