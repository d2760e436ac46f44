"""The command line's data commands (data, train, declare) and the data file every other command reads."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import TABLE, Settings


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
    from . import sources  # numpy and the data code load only for commands that read data

    return sources.prepare(settings, requested_week(settings, args)).holdout


def cmd_data(settings: Settings, args: argparse.Namespace) -> int:
    """Write the configured data source's train and holdout CSVs and print their paths."""
    from . import sources

    files = sources.prepare(settings, requested_week(settings, args))
    print(files.train)
    print(files.holdout)
    return 0


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    """Train a model folder."""
    from . import sources
    from .train import train

    both_given = bool(args.train and args.holdout)
    if both_given and args.week is not None:
        raise ValueError("--week and --train with --holdout exclude each other: give one")
    files = None if both_given else sources.prepare(settings, requested_week(settings, args))
    train_csv = Path(args.train) if args.train else files.train
    holdout_csv = Path(args.holdout) if args.holdout else files.holdout
    # the source's lineage only when both files are the source's own
    lineage = files.lineage if files and not (args.train or args.holdout) else None
    seed = args.seed if args.seed is not None else settings.seed
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
