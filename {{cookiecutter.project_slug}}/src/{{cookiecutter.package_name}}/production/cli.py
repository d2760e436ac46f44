"""The production loop's commands: guard, simulate, reproduce, bisect, and `monitor` on the live log and labels."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import Settings
from ..registry import Registry


def extend(parsers: dict[str, argparse.ArgumentParser], add, shared) -> None:
    """Add this layer's commands with ``add``, and its flags to the core's `monitor` and `serve`."""
    week, number = shared["week"], shared["number"]
    guard = add(cmd_guard)
    for command in (parsers["monitor"], guard):
        command.add_argument("--predictions", help="the prediction log folder (default: predictions in pyproject.toml)")
        command.add_argument("--feedback", help="the feedback folder (default: feedback in pyproject.toml)")
    parsers["monitor"].set_defaults(live_monitor=cmd_live_monitor)
    parsers["monitor"].description += " With neither --week nor --data: the live prediction log and its labels."
    parsers["serve"].add_argument(
        "--shadow", choices=["staging", "previous"], help="also score each row with this model, for the log only"
    )
    parsers["serve"].set_defaults(layer_environment=serve_environment)
    guard.add_argument("--min-rows", type=number(int, 100, 10**9), help="labelled rows to wait for (default: settings)")
    guard.add_argument("--no-rollback", action="store_true", help="report a rollback (exit 1) but do not make it")
    guard.add_argument("--out", default="guard", help="where to write guard.json and report.md (default: guard)")
    simulate = add(cmd_simulate, week)
    simulate.add_argument(
        "url", type=shared["http_url"], help="base URL of the running service, e.g. http://127.0.0.1:8000"
    )
    simulate.add_argument("--rows", type=number(int, 100, 10**6), default=20_000, help="rows to send (20000)")
    simulate.add_argument("--batch", type=number(int, 1, 1_000), default=500, help="rows per request (up to 1,000)")
    simulate.add_argument("--label-delay", type=number(float, 0, 3600), default=0, help="seconds before the labels")
    simulate.add_argument("--log-predictions", action="store_true", help="write the prediction log from the answers")
    add(cmd_reproduce).add_argument("version", help="a registered version or a model folder")
    bisect = add(cmd_bisect, week)
    bisect.add_argument("good", help="a commit whose model is good, e.g. production's git_commit")
    bisect.add_argument("bad", nargs="?", default="HEAD", help="a later commit whose model is worse (HEAD)")
    bisect.add_argument("--train", help="training CSV (default: the configured data source's)")
    bisect.add_argument("--holdout", help="holdout CSV every model is scored on (default: the data source's)")


def stores(settings: Settings, args: argparse.Namespace) -> tuple[Path, Path]:
    """The prediction log and feedback folders: the flags if given, else the settings."""
    return Path(args.predictions or settings.predictions), Path(args.feedback or settings.feedback)


def serve_environment(settings: Settings, args: argparse.Namespace) -> dict[str, str]:
    """What `serve` adds for this layer: production's prediction log, and the shadow model when asked for."""
    environment = {}
    if args.stage == "production":  # a staging service (the pipeline's smoke test) logs only when asked to
        environment["PREDICTION_LOG"] = os.environ.get("PREDICTION_LOG", str(settings.predictions))
    if args.shadow:
        environment["MODEL_SHADOW"] = args.shadow
    return environment


def cmd_live_monitor(settings: Settings, args: argparse.Namespace) -> int:
    """`monitor` with neither --week nor --data: every model version on each week of live labelled rows."""
    from .feedback import load
    from .live import live_report, write_outputs

    report = live_report(Registry(settings.registry), load(*stores(settings, args)), settings)
    print("\n".join(report.lines()))
    print(f"report: {write_outputs(report, Path(args.out))}")
    return 1 if report.alerts else 0


def cmd_guard(settings: Settings, args: argparse.Namespace) -> int:
    """After a promotion, compare production with the version it replaced on live labelled rows; roll back if worse."""
    from . import guard
    from .feedback import load

    registry = Registry(settings.registry)
    min_rows = args.min_rows or settings.guard_min_rows
    labelled = load(*stores(settings, args))
    result = guard.run_guard(registry, labelled, settings.gate, min_rows, settings.guard_watch_days)
    guard.act(registry, result, rollback=not args.no_rollback)
    print(guard.write_outputs(result, Path(args.out)).read_text(), end="")
    return result.exit_code


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    """Replay a week of synthetic traffic against a running service, then write its labels to the feedback store."""
    if settings.data.source != "synthetic":
        source = settings.data.source
        raise ValueError(f'simulate replays the synthetic example: it needs source = "synthetic", not "{source}"')
    from .simulate import simulate

    log = (settings.predictions, Registry(settings.registry)) if args.log_predictions else (None, None)
    simulate(args.url, args.week, args.rows, settings.seed, settings.feedback, args.batch, args.label_delay, *log)
    return 0


def cmd_reproduce(settings: Settings, args: argparse.Namespace) -> int:
    """Retrain a model at its recorded commit, lock, data and seed; exit 0 when its predictions are identical."""
    from .reproduce import reproduce

    folder = Path(args.version)
    folder = folder if folder.is_dir() else Registry(settings.registry).folder(args.version)
    return 0 if reproduce(folder, settings.data_dir) else 1


def cmd_bisect(settings: Settings, args: argparse.Namespace) -> int:
    """Find the first commit after GOOD whose model the gate blocks against GOOD's (git bisect, one retrain a step)."""
    from .bisect import bisect

    train_csv, holdout_csv = data_files(settings, args)
    bisect(args.good, args.bad, train_csv, holdout_csv, settings.seed, settings.gate)
    return 0


def data_files(settings: Settings, args: argparse.Namespace) -> tuple[Path, Path]:
    """--train and --holdout when given, else the configured data source's files (written when missing)."""
    if args.train and args.holdout:
        return Path(args.train), Path(args.holdout)
    from ..commands import requested_week
    from ..data import prepare

    files = prepare(settings, requested_week(settings, args))
    return Path(args.train or files.train), Path(args.holdout or files.holdout)
