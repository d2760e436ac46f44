"""The `reproduce` and `bisect` commands: rebuild a model at its commit; find the commit that cost AUC."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import Settings
from .registry import Registry


def data_files(settings: Settings, args: argparse.Namespace) -> tuple[Path, Path]:
    """--train and --holdout when given, else the configured data source's files (written when missing)."""
    if args.train and args.holdout:
        return Path(args.train), Path(args.holdout)
    from . import sources
    from .cli_data import requested_week

    files = sources.prepare(settings, requested_week(settings, args))
    return Path(args.train or files.train), Path(args.holdout or files.holdout)


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


def add_arguments(reproduce: argparse.ArgumentParser, bisect: argparse.ArgumentParser) -> None:
    """The two commands' arguments (the week flag comes from the CLI's shared parents)."""
    reproduce.add_argument("version", help="a registered version or a model folder")
    bisect.add_argument("good", help="a commit whose model is good, e.g. production's git_commit")
    bisect.add_argument("bad", nargs="?", default="HEAD", help="a later commit whose model is worse (HEAD)")
    bisect.add_argument("--train", help="training CSV (default: the configured data source's)")
    bisect.add_argument("--holdout", help="holdout CSV every model is scored on (default: the data source's)")
