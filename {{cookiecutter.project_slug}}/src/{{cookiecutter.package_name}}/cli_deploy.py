"""The deploy commands of the CLI: evaluate, gate, serve, smoke-test and pipeline (heavy modules load when they run)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from .cli_data import holdout_file, requested_week
from .cli_registry import resolve
from .config import PROG, Settings
from .console import Console, log_path
from .registry import Registry, RegistryError


def cmd_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    """Print a model's AUC with its 95% confidence interval on a data set; warn when the data is too small."""
    from . import artifact
    from .data import read_csv
    from .evaluate import auc_estimate, holdout_warning

    model = artifact.load(resolve(settings, args.model))
    data = read_csv(holdout_file(settings, args), model.features)
    estimate = auc_estimate(data.y, model.probability(data.X))
    warning = holdout_warning(estimate, settings.gate.max_auc_drop)
    print(json.dumps({**estimate.to_dict(), "warnings": [warning] if warning else []}, indent=2))
    if warning:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    return 0


def cmd_gate(settings: Settings, args: argparse.Namespace) -> int:
    """Decide whether a candidate may replace production (or --against MODEL); exit 0 pass, 1 blocked, 2 undecided."""
    from .gate import GateResult, run_gate, write_outputs

    overrides = {"min_auc": args.min_auc, "max_auc_drop": args.max_auc_drop}
    gate = replace(settings.gate, **{key: value for key, value in overrides.items() if value is not None})
    registry = Registry(settings.registry)
    try:
        candidate = resolve(settings, args.candidate)
    except RegistryError as unknown:  # still a report and gate.json: CI posts them whatever the decision
        candidate, result = None, GateResult("undecided", [f"could not decide: {unknown}"], gate)
    else:
        if args.against:
            baseline, role = resolve(settings, args.against), "baseline"
        else:
            production = registry.current("production")
            baseline, role = (registry.models / production if production else None), "production"
        result = run_gate(candidate, holdout_file(settings, args), baseline, gate, args.library_upgrade, role)
    out = Path(args.out) if args.out else candidate if candidate else Path("gate")
    report = write_outputs(result, out)
    print(report.read_text(), end="")
    if result.decision == "undecided":
        print(f"{PROG}: error: {result.reasons[0]}", file=sys.stderr)
    return result.exit_code


def cmd_monitor(settings: Settings, args: argparse.Namespace) -> int:
    """Production's AUC on later labelled rows against its deploy-time AUC, and drift; exit 1 to retrain."""
    from . import monitor, sources

    if args.week is None and args.data is None:
        live = getattr(args, "live_monitor", None)  # the production loop's: every week of live labelled rows
        if live is None:
            raise ValueError("monitor needs --week N (a week of the synthetic example) or --data CSV (labelled rows)")
        return live(settings, args)
    registry = Registry(settings.registry)
    production = registry.current("production")
    if production is None:
        raise RegistryError("no production model to monitor; run the pipeline first")
    if args.data:
        data, period = Path(args.data), Path(args.data).name
    else:
        files = sources.prepare(settings, args.week)
        data, period = files.holdout, files.description
    report = monitor.offline_report(registry.folder(production), period, data, settings)
    print("\n".join(report.lines()))
    print(f"report: {monitor.write_outputs(report, Path(args.out))}")
    return 1 if report.alerts else 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run the service under gunicorn (replaces this process)."""
    os.environ.update(MODEL_REGISTRY=str(settings.registry), MODEL_STAGE=args.stage)
    layer_environment = getattr(args, "layer_environment", None)  # the production loop's log and shadow
    if layer_environment:
        os.environ.update(layer_environment(settings, args))
    package = __package__
    command = [sys.executable, "-m", "gunicorn", "--config", f"python:{package}.gunicorn_conf"]
    command += ["--bind", f"{args.host}:{args.port}", f"{package}.service:create_app()"]
    if args.workers:
        command += ["--workers", str(args.workers)]
    os.execv(sys.executable, command)
    return 0  # pragma: no cover - execv does not return


def cmd_smoke_test(settings: Settings, args: argparse.Namespace) -> int:
    """Check a running service (staging): ready, answering with VERSION, rejecting bad input; --score: the holdout."""
    from . import pipeline

    base, holdout = args.url.rstrip("/"), holdout_file(settings, args)
    try:
        pipeline.wait_until_ready(base, seconds=args.wait)
    except pipeline.StageFailed as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    problems, rejected = pipeline.smoke_test(base, args.version, holdout)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"{base} answered {args.version} and rejected {rejected} bad requests with 4xx")
    return score_staging(settings, args, base, holdout) if args.score else 0


def score_staging(settings: Settings, args: argparse.Namespace, base: str, holdout: Path) -> int:
    """Send the holdout through the service and gate what it served; print the report; 0 pass, 1 otherwise."""
    from .gate import write_outputs
    from .staging import score_staging

    registry = Registry(settings.registry)
    production = registry.current("production")
    folder = registry.folder(production) if production else None
    found, result = score_staging(
        base, resolve(settings, args.version), holdout, folder, settings.gate, args.library_upgrade
    )
    report = write_outputs(result, Path(args.out))
    print(report.read_text(), end="")
    if found.differing:
        print(f"FAILED: {found.message()}", file=sys.stderr)
        return 1
    return 0 if result.exit_code == 0 else 1


def cmd_pipeline(settings: Settings, args: argparse.Namespace) -> int:
    """Run the local CD pipeline on the configured data (--week: a week of the synthetic example)."""
    from . import pipeline

    week = requested_week(settings, args)
    with Console(verbose=args.verbose, log=log_path("pipeline")) as console:
        run = pipeline.Run(
            settings,
            week,
            run_tests=not args.skip_tests,
            all_tests=args.all_tests,
            library_upgrade=args.library_upgrade,
            console=console,
        )
        return pipeline.run_pipeline(run)
