"""The command line: every pipeline stage, the registry and the service, one subcommand each."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from . import artifact, pipeline
from .cli_production import cmd_guard, cmd_monitor, cmd_simulate
from .config import Settings, load_settings
from .data import read_csv
from .evaluate import auc_estimate
from .gate import run_gate, write_outputs
from .registry import Registry, RegistryError

PROG = "{{ cookiecutter.project_slug }}"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line pointing at --help."""

    def error(self, message: str):
        """Print one clear line and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def number(kind: type, low: float, high: float):
    """An argparse type: a ``kind`` (int or float) from ``low`` to ``high``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not between {low} and {high}")
        return value

    return parse


def http_url(text: str) -> str:
    """An argparse type: an http:// URL with a host (and a valid port, if any)."""
    parts = urlsplit(text)
    try:
        valid = parts.scheme == "http" and parts.hostname and parts.port != 0
    except ValueError:  # a port out of range
        valid = False
    if not valid:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// URL such as http://127.0.0.1:8080")
    return text


def resolve(settings: Settings, model: str) -> Path:
    """A model given as a folder path or as a registered version."""
    path = Path(model)
    return path if path.is_dir() else Registry(settings.registry).folder(model)


def week_data(settings: Settings, args: argparse.Namespace, which: int) -> Path:
    """The CSV to use: --data if given, else the week's file (generated when missing)."""
    if getattr(args, "data", None):
        return Path(args.data)
    files = pipeline.week_files(settings, args.week)
    if not files[which].is_file():
        files = pipeline.write_week(settings, args.week)
    return files[which]


def cmd_data(settings: Settings, args: argparse.Namespace) -> int:
    """Write a week's synthetic train and holdout CSVs."""
    for path in pipeline.write_week(settings, args.week):
        print(path)
    return 0


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    """Train a model folder."""
    from .train import train

    train_csv = Path(args.train) if args.train else week_data(settings, args, 0)
    holdout_csv = Path(args.holdout) if args.holdout else week_data(settings, args, 1)
    folder, metadata = train(
        train_csv, holdout_csv, settings.artifacts, args.seed if args.seed is not None else settings.seed
    )
    print(f"{metadata['version']}  {folder}")
    return 0


def cmd_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    """Print a model's AUC with its 95% confidence interval on a data set."""
    model = artifact.load(resolve(settings, args.model))
    data = read_csv(week_data(settings, args, 1), model.features)
    print(json.dumps(auc_estimate(data.y, model.probability(data.X)).to_dict(), indent=2))
    return 0


def cmd_gate(settings: Settings, args: argparse.Namespace) -> int:
    """Decide whether a candidate may replace production; exit 0 pass, 1 blocked, 2 undecided."""
    overrides = {"min_auc": args.min_auc, "max_auc_drop": args.max_auc_drop}
    gate = replace(settings.gate, **{key: value for key, value in overrides.items() if value is not None})
    registry = Registry(settings.registry)
    production = registry.current("production")
    candidate = Path(args.candidate) if Path(args.candidate).is_dir() else registry.models / args.candidate
    production_dir = registry.models / production if production else None
    result = run_gate(candidate, week_data(settings, args, 1), production_dir, gate, args.library_upgrade)
    report = write_outputs(result, Path(args.out) if args.out else candidate if candidate.is_dir() else Path("gate"))
    print(report.read_text(), end="")
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
    """Print every registration, promotion and rollback."""
    for e in Registry(settings.registry).history():
        move = f"{e['from'] or '-'} -> {e['to']}"
        print(f"{e['time']}  {e['action']:<8} {e['stage'] or '-':<10} {move}  ({e['user']}: {e['reason']})")
    return 0


def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    """List registered versions with their holdout AUC and stages."""
    registry = Registry(settings.registry)
    stages = {stage: registry.current(stage) for stage in ("staging", "production")}
    for version in registry.versions():
        auc = artifact.read_json(registry.folder(version) / artifact.METRICS_FILE)["holdout"]["auc"]
        print(f"{version}  AUC {auc:.4f}  {' '.join(s for s, v in stages.items() if v == version)}".rstrip())
    return 0


def cmd_diff(settings: Settings, args: argparse.Namespace) -> int:
    """Show what changed between two versions: commit, data, parameters, libraries, metrics."""
    left, right = (artifact.lineage(resolve(settings, version)) for version in (args.a, args.b))
    changed = [key for key in sorted(left.keys() | right.keys()) if left.get(key) != right.get(key)]
    for key in changed:
        print(f"{key}:\n  - {left.get(key)}\n  + {right.get(key)}")
    print(f"{len(changed)} field(s) differ")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run the service under gunicorn (replaces this process)."""
    os.environ.update(MODEL_REGISTRY=str(settings.registry), MODEL_STAGE=args.stage)
    package = __package__
    command = [sys.executable, "-m", "gunicorn", "--config", f"python:{package}.gunicorn_conf"]
    command += ["--bind", f"{args.host}:{args.port}", f"{package}.service:create_app()"]
    if args.workers:
        command += ["--workers", str(args.workers)]
    os.execv(sys.executable, command)
    return 0  # pragma: no cover - execv does not return


def cmd_smoke_test(settings: Settings, args: argparse.Namespace) -> int:
    """Check a running service (staging): ready, answering with VERSION, rejecting bad requests with 4xx."""
    base = args.url.rstrip("/")
    try:
        pipeline.wait_until_ready(base, seconds=args.wait)
    except pipeline.StageFailed as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    problems, rejected = pipeline.smoke_test(base, args.version, week_data(settings, args, 1))
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    if not problems:
        print(f"{base} answered {args.version} and rejected {rejected} bad requests with 4xx")
    return 1 if problems else 0


def cmd_pipeline(settings: Settings, args: argparse.Namespace) -> int:
    """Run the local CD pipeline for a week."""
    run = pipeline.Run(settings, args.week, run_tests=not args.skip_tests, library_upgrade=args.library_upgrade)
    return pipeline.run_pipeline(run)


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand with its flags; flags that several subcommands share come from small parent parsers."""
    parser = Parser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def shared(*names: str, **options) -> argparse.ArgumentParser:
        flag = argparse.ArgumentParser(add_help=False)
        flag.add_argument(*names, **options)
        return flag

    week = shared("--week", type=int, default=0, help="week of synthetic data (default 0)")
    data = shared("--data", help="a CSV to use instead of the week's holdout")
    reason = shared("--reason", default="manual", help="why, for the history")
    upgrade = shared(
        "--library-upgrade", action="store_true", help="production is from another scikit-learn: floor alone decides"
    )

    def add(function, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        name = function.__name__.removeprefix("cmd_").replace("_", "-")
        # argparse %-formats help strings: a docstring's "95%" would crash --help
        help_text = function.__doc__.replace("%", "%%")
        command = commands.add_parser(name, parents=parents, help=help_text, description=function.__doc__)
        command.set_defaults(function=function)
        return command

    add(cmd_data, week)
    train = add(cmd_train, week)
    train.add_argument("--train", help="training CSV")
    train.add_argument("--holdout", help="holdout CSV")
    train.add_argument("--seed", type=number(int, 0, 2**32 - 1), help="random seed (default from pyproject.toml)")
    add(cmd_evaluate, week, data).add_argument("model", help="a model folder or a registered version")
    gate = add(cmd_gate, week, data, upgrade)
    gate.add_argument("candidate", help="candidate model folder or version")
    gate.add_argument("--min-auc", type=number(float, 0, 1), help="override the floor")
    gate.add_argument("--max-auc-drop", type=number(float, 0, 1), help="override the non-inferiority margin")
    gate.add_argument("--out", help="where to write gate.json, report.md and roc.png (default: the candidate folder)")
    add(cmd_register).add_argument("model", help="a trained model folder")
    promote = add(cmd_promote, reason)
    promote.add_argument("version")
    promote.add_argument("--stage", choices=["staging", "production"], default="production")
    add(cmd_rollback, reason).add_argument("--to", help="version to restore (default: the one production replaced)")
    add(cmd_history)
    add(cmd_models)
    diff = add(cmd_diff)
    diff.add_argument("a", help="older version or folder")
    diff.add_argument("b", help="newer version or folder")
    predictions = shared("--predictions", help="the prediction log folder (default: predictions in pyproject.toml)")
    feedback = shared("--feedback", help="the feedback folder (default: feedback in pyproject.toml)")
    monitor = add(cmd_monitor, data, predictions, feedback)
    monitor.add_argument("--week", type=int, help="score production on week N's holdout instead of live labels")
    monitor.add_argument("--out", default="monitor", help="where to write monitor.json, report.md, trend.png")
    guard = add(cmd_guard, predictions, feedback)
    guard.add_argument("--min-rows", type=number(int, 100, 10**9), help="labelled rows to wait for (default: settings)")
    guard.add_argument("--no-rollback", action="store_true", help="report a rollback (exit 1) but do not make it")
    guard.add_argument("--out", default="guard", help="where to write guard.json and report.md (default: guard)")
    simulate = add(cmd_simulate, week)
    simulate.add_argument("url", type=http_url, help="base URL of the running service, e.g. http://127.0.0.1:8000")
    simulate.add_argument("--rows", type=number(int, 100, 10**6), default=20_000, help="transactions (20000)")
    simulate.add_argument("--batch", type=number(int, 1, pipeline.MAX_BATCH), default=500, help="rows per request")
    simulate.add_argument("--label-delay", type=number(float, 0, 3600), default=0, help="seconds before the labels")
    simulate.add_argument("--log-predictions", action="store_true", help="write the prediction log from the answers")
    serve = add(cmd_serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=number(int, 1, 65535), default=8000)
    serve.add_argument("--stage", choices=["staging", "production"], default="production")
    serve.add_argument("--workers", type=number(int, 1, 256), help="default: WEB_CONCURRENCY, else 2")
    smoke = add(cmd_smoke_test, week, data)
    smoke.add_argument("url", type=http_url, help="base URL of the running service, e.g. http://127.0.0.1:8080")
    smoke.add_argument("--version", required=True, help="model version the service must answer with")
    smoke.add_argument("--wait", type=number(float, 0, 3600), default=90, help="seconds to wait for /ready (90)")
    pipeline_command = add(cmd_pipeline, week, upgrade)
    pipeline_command.add_argument("--skip-tests", action="store_true", help="do not run the unit tests first")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a subcommand, turning expected failures into one clear line."""
    args = build_parser().parse_args(argv)
    try:
        return args.function(load_settings(), args)
    # ValueError covers the settings' ConfigError, the data's DataError and data a model cannot be scored on
    except (artifact.ArtifactError, RegistryError, OSError, KeyError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2 if args.command in ("gate", "guard", "monitor") else 1  # their exit 1 means a decision


if __name__ == "__main__":
    sys.exit(main())
