"""Prove the AUC gate with numbers: how often it blocks a subtle bug and passes a harmless retrain.

Usage (from the template repository):

    python bench/gate_quality.py                      # bakes the template into a temp dir first
    python bench/gate_quality.py --project /tmp/x/fraud-detector --seeds 1000

For every seed ``s`` it trains, on the default synthetic data of one week:

* production: ``train.fit`` on ``train_rows`` rows made with seed ``s``;
* harmless retrain: the same, with only the seed changed (data and model seed ``s + 20_000``);
* bugs: the harmless retrain with a unit error injected into one feature column of the
  training matrix only (after validation, so only the model can notice); prediction uses
  correct values;
* a model swap: GaussianNB on the retrain's data, about 0.5 AUC points worse than
  production, which is inside the tolerated drop (not one of the targets: it shows what
  a larger holdout buys).

Each candidate is compared with production on a holdout made like the pipeline's
(seed ``s + 10_000``), for several holdout sizes, by the gate's own ``decide()`` and by the
point-estimate rules other tools use. The output is a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.naive_bayes import GaussianNB
from threadpoolctl import threadpool_limits

TEMPLATE = Path(__file__).resolve().parent.parent
HOLDOUT_SEED_OFFSET = 10_000  # as synthetic.write_week
RETRAIN_SEED_OFFSET = 20_000
TARGET = 0.95

# name -> (feature, factor): a unit error at training time only
BUGS = {
    "bug: merchant_risk in percent (x100)": ("merchant_risk", 100.0),
    "bug: amount in cents (x100)": ("amount", 100.0),
}
MAIN_BUG = "bug: merchant_risk in percent (x100)"
RETRAIN = "harmless retrain"
# a different, slightly worse model (about 0.5 AUC points, inside max_auc_drop): the gate should
# pass it, but its scores are less correlated with production's, so proving that takes more rows
SWAP = "model swap: GaussianNB (within tolerance)"


def bake(template: Path, out_dir: Path) -> Path:
    """Bake the template with default answers into ``out_dir``; return the project folder."""
    from cookiecutter.main import cookiecutter

    return Path(cookiecutter(str(template), no_input=True, output_dir=str(out_dir)))


def find_package(project: Path) -> tuple[Path, str]:
    """Return (src folder, package name) of a baked project."""
    src = project / "src"
    packages = sorted(path.parent.name for path in src.glob("*/gate.py"))
    if len(packages) != 1:
        raise SystemExit(f"ERROR: expected one package with a gate.py under {src}, found {packages or 'none'}")
    return src, packages[0]


def import_package(src: Path, package: str) -> dict:
    """Put ``src`` first on sys.path and import the modules the benchmarks use."""
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    names = ("config", "data", "features", "gate", "synthetic", "train")
    return {name: importlib.import_module(f"{package}.{name}") for name in names}


def open_project(project: Path | None, stack: ExitStack) -> tuple[Path, str]:
    """Return (src, package) of the given project, or of a fresh bake that lives as long as ``stack``."""
    if project is None:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-bake-")))
        project = bake(TEMPLATE, tmp)
        print(f"baked {TEMPLATE} into {project}", file=sys.stderr)
    return find_package(project.resolve())


@dataclass(frozen=True)
class Job:
    """What one worker needs to run one seed."""

    src: Path
    package: str
    week: int
    train_rows: int
    holdout_sizes: tuple[int, ...]


def run_seed(job: Job, seed: int) -> list[dict]:
    """Run one seed with one BLAS thread: the worker processes already use the cores."""
    with threadpool_limits(limits=1):
        return compare_on_holdouts(job, seed)


def compare_on_holdouts(job: Job, seed: int) -> list[dict]:
    """Train production, the retrain, the bugs and the swap for one seed; compare them on every holdout size."""
    modules = import_package(job.src, job.package)
    data, evaluate, gate, train = modules["data"], modules["gate"], modules["gate"], modules["train"]
    synthetic = modules["synthetic"]
    settings = modules["config"].GateSettings()
    names = modules["features"].feature_names()

    production = train.fit(synthetic.synthetic_transactions(job.train_rows, job.week, seed), seed)
    retrain_seed = seed + RETRAIN_SEED_OFFSET
    retrain_data = synthetic.synthetic_transactions(job.train_rows, job.week, retrain_seed)
    candidates = {RETRAIN: train.fit(retrain_data, retrain_seed)}
    for name, (feature, factor) in BUGS.items():
        X = retrain_data.X.copy()
        X[:, names.index(feature)] *= factor
        candidates[name] = train.fit(data.Dataset(X, retrain_data.y), retrain_seed)
    candidates[SWAP] = GaussianNB().fit(retrain_data.X, retrain_data.y)

    rows = []
    for size in job.holdout_sizes:
        holdout = synthetic.synthetic_transactions(size, job.week, seed + HOLDOUT_SEED_OFFSET)
        old = production.predict_proba(holdout.X)[:, 1]
        clean = None
        for name, model in candidates.items():
            new = model.predict_proba(holdout.X)[:, 1]
            comparison = evaluate.compare_aucs(holdout.y, new, old, settings.confidence)
            decision, _ = gate.decide(comparison.candidate, comparison, settings)
            if name == RETRAIN:
                clean = comparison.candidate.auc
            rows.append(
                {
                    "seed": seed,
                    "size": size,
                    "candidate": name,
                    "new": comparison.candidate.auc,
                    "old": comparison.baseline.auc,
                    "difference": comparison.difference,
                    "lower_bound": comparison.lower_bound,
                    "std_error": comparison.std_error,
                    "cost_vs_clean": comparison.candidate.auc - clean,
                    "gate_blocks": decision != "pass",
                    "floor_blocks": comparison.candidate.auc < settings.min_auc,
                }
            )
    return rows


def point_rules(max_auc_drop: float) -> dict:
    """The point-estimate rules other tools use; each returns True when it blocks."""
    return {
        "`new >= old`": lambda new, old: new < old,
        "`new >= old - 1e-10`": lambda new, old: new < old - 1e-10,
        f"`new >= old - {max_auc_drop}`": lambda new, old: new < old - max_auc_drop,
    }


def summarise(rows: list[dict], sizes: tuple[int, ...], max_auc_drop: float) -> tuple[str, dict]:
    """Return the Markdown table and, per holdout size, whether the gate met both targets."""
    rules = point_rules(max_auc_drop)
    header = [
        "holdout rows",
        "candidate",
        "mean ΔAUC vs prod",
        "mean abs ΔAUC",
        "mean SE(Δ)",
        "gate `decide()`",
        "floor alone",
        *rules,
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    met = {}
    for size in sizes:
        ok = True
        for name in [RETRAIN, *BUGS, SWAP]:
            group = [row for row in rows if row["size"] == size and row["candidate"] == name]
            difference = np.array([row["difference"] for row in group])
            blocked = {
                "gate": np.mean([row["gate_blocks"] for row in group]),
                "floor": np.mean([row["floor_blocks"] for row in group]),
                **{rule: np.mean([check(row["new"], row["old"]) for row in group]) for rule, check in rules.items()},
            }
            if name == RETRAIN:
                ok &= 1 - blocked["gate"] >= TARGET
            elif name == MAIN_BUG:
                ok &= blocked["gate"] >= TARGET
            cells = [
                f"{size:,}",
                name,
                f"{difference.mean():+.4f}",
                f"{np.abs(difference).mean():.4f}",
                f"{np.mean([row['std_error'] for row in group]):.4f}",
                *(f"{100 * value:.1f}% blocked" for value in blocked.values()),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        met[size] = bool(ok)
    return "\n".join(lines), met


def bug_costs(rows: list[dict], size: int) -> list[str]:
    """One line per bug: its mean AUC cost against production and against the clean retrain."""
    lines = []
    for name in BUGS:
        group = [row for row in rows if row["size"] == size and row["candidate"] == name]
        vs_prod = np.array([row["difference"] for row in group])
        vs_clean = np.array([row["cost_vs_clean"] for row in group])
        lines.append(
            f"- {name}: AUC cost vs production {-vs_prod.mean():.4f} (sd {vs_prod.std():.4f}, "
            f"min {-vs_prod.max():.4f}, max {-vs_prod.min():.4f}); vs the clean retrain on the same data "
            f"{-vs_clean.mean():.4f}"
        )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="baked project folder (default: bake the template to a temp dir)")
    parser.add_argument("--seeds", type=int, default=200, help="number of seeds, 0..N-1 (default 200)")
    parser.add_argument(
        "--holdout-sizes",
        default="5000,10000,20000,40000",
        help="comma-separated holdout row counts (default 5000,10000,20000,40000)",
    )
    parser.add_argument("--train-rows", type=int, help="training rows (default: the project's settings.train_rows)")
    parser.add_argument("--week", type=int, default=0, help="week of the synthetic data (default 0)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the Markdown report."""
    args = parse_args(argv)
    sizes = tuple(int(size) for size in args.holdout_sizes.split(","))
    with ExitStack() as stack:
        src, package = open_project(args.project, stack)
        modules = import_package(src, package)
        defaults = modules["config"].Settings()
        settings = defaults.gate
        job = Job(src, package, args.week, args.train_rows or defaults.train_rows, sizes)
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            per_seed = pool.map(run_seed, [job] * args.seeds, range(args.seeds), chunksize=4)
            rows = [row for seed_rows in per_seed for row in seed_rows]
        elapsed = time.perf_counter() - started

    table, met = summarise(rows, sizes, settings.max_auc_drop)
    print(
        f"# Gate quality: {args.seeds} seeds, week {args.week}, {job.train_rows:,} training rows, "
        f"min_auc {settings.min_auc}, max_auc_drop {settings.max_auc_drop}, confidence {settings.confidence}\n"
    )
    print(table)
    print()
    reference = defaults.holdout_rows if defaults.holdout_rows in sizes else sizes[-1]
    print(f"At {reference:,} holdout rows:")
    print("\n".join(bug_costs(rows, reference)))
    print(f"\nTargets: {MAIN_BUG} blocked in >= {TARGET:.0%} of seeds, {RETRAIN} passed in >= {TARGET:.0%}.")
    for size in sizes:
        print(f"- {size:,} holdout rows: {'both targets met' if met[size] else 'a target missed'}")
    print(f"\n{len(rows)} comparisons in {elapsed:.0f} s with {args.jobs} worker(s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
