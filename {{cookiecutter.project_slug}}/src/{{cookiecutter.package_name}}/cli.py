"""The command line of the project: one subcommand per stage of training, gating, deploying and monitoring a model."""

from __future__ import annotations

import argparse
import contextlib
import sys
from urllib.parse import urlsplit

from . import commands
from .config import PROG, layers, load_settings


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
    with contextlib.suppress(ValueError):  # a port out of range
        parts = urlsplit(text)
        if parts.scheme == "http" and parts.hostname and parts.port != 0:
            return text
    raise argparse.ArgumentTypeError(f"{text!r} is not an http:// URL such as http://127.0.0.1:8080")


def build_parser(extensions: list | None = None) -> argparse.ArgumentParser:
    """Every subcommand with its flags; flags that several subcommands share come from small parent parsers.

    ``extensions`` (default: the installed layers, such as the production loop) add their own commands and flags.
    """
    parser = Parser(prog=PROG, description=__doc__)
    subcommands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def shared(*names: str, **options) -> argparse.ArgumentParser:
        flag = argparse.ArgumentParser(add_help=False)
        flag.add_argument(*names, **options)
        return flag

    week = shared("--week", type=int, help='week of the synthetic example (default 0; needs source = "synthetic")')
    data = shared("--data", help="a labelled CSV to use instead of the configured source's holdout")
    reason = shared("--reason", default="manual", help="why, for the history")
    upgrade = shared(
        "--library-upgrade", action="store_true", help="production is from another scikit-learn: floor alone decides"
    )

    parsers: dict[str, argparse.ArgumentParser] = {}

    def add(function, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        name = function.__name__.removeprefix("cmd_").replace("_", "-")
        # argparse %-formats help strings: a docstring's "95%" would crash --help
        help_text = function.__doc__.replace("%", "%%")
        command = subcommands.add_parser(name, parents=parents, help=help_text, description=function.__doc__)
        command.set_defaults(function=function)
        parsers[name] = command
        return command

    train = add(commands.cmd_train, week)
    train.add_argument("--train", help="training CSV")
    train.add_argument("--holdout", help="holdout CSV")
    train.add_argument("--seed", type=number(int, 0, 2**32 - 1), help="random seed (default from pyproject.toml)")
    declare = add(commands.cmd_declare)
    declare.add_argument("csv", help="a labelled CSV with a header row")
    declare.add_argument("--label", required=True, help="the 0/1 column the model predicts")
    declare.add_argument("--ignore", action="append", metavar="COLUMN", help="a column that is no feature (repeatable)")
    declare.add_argument("--write", action="store_true", help="rewrite LABEL and FEATURES in features.py")
    gate = add(commands.cmd_gate, week, data, upgrade)
    gate.add_argument("candidate", help="candidate model folder or version")
    gate.add_argument("--against", metavar="MODEL", help="compare with this folder or version, not production")
    gate.add_argument("--min-auc", type=number(float, 0, 1), help="override the floor")
    gate.add_argument("--max-auc-drop", type=number(float, 0, 1), help="override the non-inferiority margin")
    gate.add_argument("--out", help="where to write gate.json, report.md and roc.png (default: the candidate folder)")
    add(commands.cmd_register).add_argument("model", help="a trained model folder")
    promote = add(commands.cmd_promote, reason)
    promote.add_argument("version")
    promote.add_argument("--stage", choices=["staging", "production"], default="production")
    rollback = add(commands.cmd_rollback, reason)
    rollback.add_argument("--to", help="version to restore (default: the one production replaced)")
    add(commands.cmd_history)
    diff = add(commands.cmd_diff)
    diff.add_argument("a", help="older version or folder")
    diff.add_argument("b", help="newer version or folder")
    monitor = add(commands.cmd_monitor, data)
    monitor.add_argument("--week", type=int, help="score production on week N's holdout of the synthetic example")
    monitor.add_argument("--out", default="monitor", help="where to write monitor.json and report.md")
    serve = add(commands.cmd_serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=number(int, 1, 65535), default=8000)
    serve.add_argument("--stage", choices=["staging", "production"], default="production")
    serve.add_argument("--workers", type=number(int, 1, 256), help="default: WEB_CONCURRENCY, else 2")
    smoke = add(commands.cmd_smoke_test, week, data, upgrade)
    smoke.add_argument("url", type=http_url, help="base URL of the running service, e.g. http://127.0.0.1:8080")
    smoke.add_argument("--version", required=True, help="model version the service must answer with")
    smoke.add_argument("--wait", type=number(float, 0, 3600), default=90, help="seconds to wait for /ready (90)")
    smoke.add_argument(
        "--score", action="store_true", help="also score the holdout through it: skew check, then the gate on it"
    )
    smoke.add_argument("--out", default="staging-report", help="with --score: where to write the gate's report")
    pipeline_command = add(commands.cmd_pipeline, week, upgrade)
    tests = pipeline_command.add_mutually_exclusive_group()
    tests.add_argument("--skip-tests", action="store_true", help="do not run the tests first")
    tests.add_argument("--all-tests", action="store_true", help="also run the tests marked slow")
    pipeline_command.add_argument(
        "-v", "--verbose", action="store_true", help="show every stage's full output (always in logs/pipeline-*.log)"
    )
    shared_flags = {"week": week, "data": data, "number": number, "http_url": http_url}
    for layer in layers() if extensions is None else extensions:
        layer.extend_cli(parsers, add, shared_flags)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a subcommand, turning expected failures into one clear line."""
    from .artifact import ArtifactError  # here, not at the top: `--help` needs neither
    from .registry import RegistryError

    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        # a --week the data source cannot use stops every command before it starts
        commands.requested_week(settings, args)
        return args.function(settings, args)
    # ValueError covers the settings' ConfigError, the data's DataError and data a model cannot be scored on
    except (ArtifactError, RegistryError, OSError, KeyError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2 if args.command in ("gate", "guard", "monitor") else 1  # their exit 1 means a decision


if __name__ == "__main__":
    sys.exit(main())
