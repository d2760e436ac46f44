"""Production commands of the CLI: monitor, guard and simulate (each imports its module when it runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import Settings
from .registry import Registry, RegistryError


def stores(settings: Settings, args: argparse.Namespace) -> tuple[Path, Path]:
    """The prediction log and feedback folders: the flags if given, else the settings."""
    return Path(args.predictions or settings.predictions), Path(args.feedback or settings.feedback)


def cmd_monitor(settings: Settings, args: argparse.Namespace) -> int:
    """Live AUC per model version and week against its deploy-time AUC, and drift; exit 1 when a retrain is advised."""
    from . import monitor

    registry = Registry(settings.registry)
    if args.week is None and args.data is None:
        from .feedback import load

        report = monitor.live_report(registry, load(*stores(settings, args)), settings)
    else:
        production = registry.current("production")
        if production is None:
            raise RegistryError("no production model to monitor; run the pipeline first")
        if args.data:
            data, period = Path(args.data), Path(args.data).name
        else:
            from . import sources

            files = sources.prepare(settings, args.week)
            data, period = files.holdout, files.description
        report = monitor.offline_report(registry.folder(production), period, data, settings)
    print("\n".join(report.lines()))
    print(f"report: {monitor.write_outputs(report, Path(args.out))}")
    return 1 if report.alerts else 0


def cmd_guard(settings: Settings, args: argparse.Namespace) -> int:
    """After a promotion, compare production with the version it replaced on live labelled rows; roll back if worse."""
    from . import guard
    from .feedback import load

    registry = Registry(settings.registry)
    min_rows = args.min_rows or settings.guard_min_rows
    result = guard.run_guard(registry, load(*stores(settings, args)), settings.gate, min_rows)
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
