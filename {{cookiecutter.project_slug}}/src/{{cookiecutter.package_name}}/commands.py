"""What each subcommand does: cli.py lists them with their flags; heavy modules load only when one runs."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from .config import PROG, TABLE, Settings
from .registry import Registry, RegistryError

GUNICORN_CONFIG = Path("gunicorn.conf.py")  # the server's settings, beside pyproject.toml


def requested_week(settings: Settings, args: argparse.Namespace) -> int | None:
    """The --week asked for, refused when the configured data source has no weeks."""
    chosen = getattr(args, "week", None)
    if chosen is not None and settings.data.source != "synthetic":
        raise ValueError(
            f'--week needs source = "synthetic"; [tool.{TABLE}.data] in pyproject.toml says "{settings.data.source}"'
        )
    return chosen


def holdout_file(settings: Settings, args: argparse.Namespace) -> Path:
    """The labelled CSV to score on: --data if given, else the configured source's holdout file."""
    if getattr(args, "data", None):
        if getattr(args, "week", None) is not None:
            raise ValueError("--week and --data exclude each other: give one")
        return Path(args.data)
    from .data import prepare  # numpy and the data code load only for commands that read data

    return prepare(settings, requested_week(settings, args)).holdout


def resolve(settings: Settings, model: str) -> Path:
    """A model given as a folder path or as a registered version."""
    path = Path(model)
    return path if path.is_dir() else Registry(settings.registry).folder(model)


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    """Write the configured data source's CSVs and train a model folder on them (or on --train and --holdout)."""
    from .data import prepare
    from .train import train

    if args.train and args.holdout:
        if args.week is not None:
            raise ValueError("--week and --train with --holdout exclude each other: give one")
        train_csv, holdout_csv, lineage = Path(args.train), Path(args.holdout), None
    else:
        files = prepare(settings, args.week)
        train_csv, holdout_csv = Path(args.train or files.train), Path(args.holdout or files.holdout)
        lineage = None if args.train or args.holdout else files.lineage  # only when both files are the source's
    seed = settings.seed if args.seed is None else args.seed
    folder, metadata = train(train_csv, holdout_csv, settings.artifacts, seed, source=lineage)
    print(f"{metadata['version']}  {folder}")
    return 0


def cmd_declare(settings: Settings, args: argparse.Namespace) -> int:
    """Print the LABEL and FEATURES declaration for a labelled CSV; --write puts it into features.py."""
    from . import declare

    features = declare.declare(Path(args.csv), args.label, tuple(args.ignore or ()))
    declaration = declare.render(features, args.label)
    for note in declare.warnings(Path(args.csv), features):
        print(f"note: {note}", file=sys.stderr)
    if not args.write:
        print(declaration, end="")
        return 0
    features_py = Path(declare.__file__).with_name("features.py")
    declare.write(features_py, declaration)
    print(f"wrote LABEL and FEATURES to {features_py}: review each range and description")
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
        else:  # a pointer to a missing folder still gets a report: the gate cannot decide
            production = registry.current("production")
            baseline, role = (registry.models / production if production else None), "production"
        result = run_gate(candidate, holdout_file(settings, args), baseline, gate, args.library_upgrade, role)
    out = Path(args.out) if args.out else candidate or Path("gate")
    print(write_outputs(result, out).read_text(), end="")
    if result.decision == "undecided":
        print(f"{PROG}: error: {result.reasons[0]}", file=sys.stderr)
    return result.exit_code


def cmd_register(settings: Settings, args: argparse.Namespace) -> int:
    """Copy a model folder into the registry."""
    print(Registry(settings.registry).register(Path(args.model)))
    return 0


def cmd_promote(settings: Settings, args: argparse.Namespace) -> int:
    """Point a stage at a registered version."""
    previous = Registry(settings.registry).promote(args.version, args.stage, reason=args.reason)
    print(f"{args.stage}: {previous or '(none)'} -> {args.version}")
    return 0


def cmd_rollback(settings: Settings, args: argparse.Namespace) -> int:
    """Move production back to the version it replaced, or to --to VERSION."""
    old, new = Registry(settings.registry).rollback(args.to, reason=args.reason)
    print(f"production: {old} -> {new}")
    return 0


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    """List the registered versions (holdout AUC, stages), then every registration, promotion and rollback."""
    from .artifact import METRICS_FILE, read_json

    registry = Registry(settings.registry)
    stages = {stage: registry.current(stage) for stage in ("staging", "production")}
    for version in registry.versions():
        auc = read_json(registry.folder(version) / METRICS_FILE)["holdout"]["auc"]
        print(f"{version}  AUC {auc:.4f}  {' '.join(s for s, v in stages.items() if v == version)}".rstrip())
    for e in registry.history():
        move = f"{e['from'] or '-'} -> {e['to']}"
        print(f"{e['time']}  {e['action']:<8} {e['stage'] or '-':<10} {move}  ({e['user']}: {e['reason']})")
    return 0


def cmd_diff(settings: Settings, args: argparse.Namespace) -> int:
    """Show what changed between two versions: commit, data, parameters, libraries, metrics."""
    from .artifact import lineage

    left, right = (lineage(resolve(settings, version)) for version in (args.a, args.b))
    changed = [key for key in sorted(left.keys() | right.keys()) if left.get(key) != right.get(key)]
    for key in changed:
        print(f"{key}:\n  - {left.get(key)}\n  + {right.get(key)}")
    print(f"{len(changed)} field(s) differ")
    return 0


def cmd_monitor(settings: Settings, args: argparse.Namespace) -> int:
    """Production's AUC on later labelled rows against its deploy-time AUC, and drift; exit 1 to retrain."""
    from . import monitor

    if args.week is None and args.data is None:
        live = getattr(args, "live_monitor", None)  # the production loop's: every week of live labelled rows
        if live is None:
            raise ValueError("monitor needs --week N (a week of the synthetic example) or --data CSV (labelled rows)")
        return live(settings, args)
    production = Registry(settings.registry).current_folder("production")
    if production is None:
        raise RegistryError("no production model to monitor; run the pipeline first")
    data = holdout_file(settings, args)
    period = data.name if args.data else f"synthetic week {args.week}"
    report = monitor.offline_report(production, period, data, settings)
    print("\n".join(report.lines()))
    print(f"report: {monitor.write_outputs(report, Path(args.out))}")
    return 1 if report.alerts else 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run the service under gunicorn, with the settings of gunicorn.conf.py (replaces this process)."""
    if not GUNICORN_CONFIG.is_file():
        raise ValueError(f"no {GUNICORN_CONFIG} here: run serve in the project's folder, beside pyproject.toml")
    os.environ.update(MODEL_REGISTRY=str(settings.registry), MODEL_STAGE=args.stage)
    if layer_environment := getattr(args, "layer_environment", None):  # the production loop's log and shadow
        os.environ.update(layer_environment(settings, args))
    command = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONFIG.resolve())]
    command += ["--bind", f"{args.host}:{args.port}", f"{__package__}.service:create_app()"]
    if args.workers:
        command += ["--workers", str(args.workers)]
    os.execv(sys.executable, command)
    return 0  # pragma: no cover - execv does not return


def cmd_smoke_test(settings: Settings, args: argparse.Namespace) -> int:
    """Check a running service (staging): ready, answering with VERSION, rejecting bad input; --score: the holdout."""
    from . import staging
    from .gate import write_outputs

    base, holdout = args.url.rstrip("/"), holdout_file(settings, args)
    try:
        staging.wait_until_ready(base, seconds=args.wait)
        print(staging.smoke_test(base, args.version, holdout))
        if args.score:
            production = Registry(settings.registry).current_folder("production")
            found, result = staging.score_staging(
                base, resolve(settings, args.version), holdout, production, settings.gate, args.library_upgrade
            )
            report = write_outputs(result, Path(args.out))
            print(report.read_text(), end="")
            print(staging.verdict(found, result, report))
    except staging.StageFailed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


def cmd_pipeline(settings: Settings, args: argparse.Namespace) -> int:
    """Run the local CD pipeline on the configured data (--week: a week of the synthetic example)."""
    from . import pipeline

    with pipeline.Console(verbose=args.verbose, log=pipeline.log_path("pipeline")) as console:
        run = pipeline.Run(settings, args.week, not args.skip_tests, args.all_tests, args.library_upgrade, console)
        return pipeline.run_pipeline(run)
