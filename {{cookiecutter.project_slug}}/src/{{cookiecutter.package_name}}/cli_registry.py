"""The registry commands of the CLI: register, promote, rollback, history, models and diff."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import Settings
from .registry import Registry


def resolve(settings: Settings, model: str) -> Path:
    """A model given as a folder path or as a registered version."""
    path = Path(model)
    return path if path.is_dir() else Registry(settings.registry).folder(model)


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
    from . import artifact

    registry = Registry(settings.registry)
    stages = {stage: registry.current(stage) for stage in ("staging", "production")}
    for version in registry.versions():
        auc = artifact.read_json(registry.folder(version) / artifact.METRICS_FILE)["holdout"]["auc"]
        print(f"{version}  AUC {auc:.4f}  {' '.join(s for s, v in stages.items() if v == version)}".rstrip())
    return 0


def cmd_diff(settings: Settings, args: argparse.Namespace) -> int:
    """Show what changed between two versions: commit, data, parameters, libraries, metrics."""
    from . import artifact

    left, right = (artifact.lineage(resolve(settings, version)) for version in (args.a, args.b))
    changed = [key for key in sorted(left.keys() | right.keys()) if left.get(key) != right.get(key)]
    for key in changed:
        print(f"{key}:\n  - {left.get(key)}\n  + {right.get(key)}")
    print(f"{len(changed)} field(s) differ")
    return 0
