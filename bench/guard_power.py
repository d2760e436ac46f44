"""Prove the guard with numbers: how often it rolls back a training/serving skew bug, and a harmless promotion.

Usage (from the template repository):

    python bench/guard_power.py                       # bakes the template into a temp dir first
    python bench/guard_power.py --project /tmp/x/fraud-detector --seeds 1000

For every seed ``s`` it draws a live week ``w`` from 1 to 6 and trains, on the default synthetic data:

* production, the model being replaced: ``train.fit`` on week ``w - 1`` (last week's data);
* two harmless promotions: a retrain on another sample of week ``w - 1`` (no better, no worse) and a
  retrain on week ``w`` (the routine weekly retrain);
* a skew bug: a retrain on week ``w`` whose training data has one column in other units than the
  service receives (a time zone for ``hour``, cents or thousands for ``amount``, miles for the
  distance, a 7-day or 30-day count for ``transactions_last_24h``, an inverted flag or score),
  drawn at random among those that cost at least ``--min-cost`` AUC points on week ``w`` against
  production (measured on 200,000 reference rows). The table shows how often the offline gate passes
  each candidate, on a holdout made like the pipeline's (the bug's holdout carries its skew, as an
  export would): it scores candidate and production on the same skewed rows.

Then a week of live traffic arrives, its labels a day at a time: the guard (the project's own
``guard.decide`` with its default settings) looks after each day, on every row labelled so far,
and stops at its first rollback or confirmation. This is repeated for several weekly volumes
(prefixes of the same live sample). The output is a Markdown table.
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
from threadpoolctl import threadpool_limits

TEMPLATE = Path(__file__).resolve().parent.parent
REFERENCE_ROWS = 200_000
SAMPLE_SEED_OFFSET = 50_000  # another sample of the same week, for the harmless retrain
LIVE_SEED_OFFSET = 70_000
DAYS = 7
TARGET_BUGS, TARGET_HARMLESS = 0.95, 0.01

# name -> (feature, what the training export did to it)
SKEWS = {
    **{f"hour in UTC{k:+d}": ("hour", lambda v, k=k: (v - k) % 24) for k in range(-12, 13) if k},
    "amount in cents (capped)": ("amount", lambda v: np.minimum(v * 100, 100_000)),
    "amount in tens": ("amount", lambda v: np.minimum(v * 10, 100_000)),
    "amount in tenths": ("amount", lambda v: np.round(v / 10, 2)),
    "amount in hundreds": ("amount", lambda v: np.round(v / 100, 2)),
    "amount in thousands": ("amount", lambda v: np.round(v / 1_000, 2)),
    "distance in miles": ("distance_from_home_km", lambda v: np.round(v / 1.609344, 1)),
    "distance in km read as miles": ("distance_from_home_km", lambda v: np.minimum(np.round(v * 1.609344, 1), 20_000)),
    "transactions over 7 days": ("transactions_last_24h", lambda v: np.minimum(v * 7, 1_000)),
    "transactions over 30 days": ("transactions_last_24h", lambda v: np.minimum(v * 30, 1_000)),
    "transactions per hour": ("transactions_last_24h", lambda v: np.round(v / 24)),
    "card_present inverted": ("card_present", lambda v: 1 - v),
    "merchant_risk inverted": ("merchant_risk", lambda v: np.round(1 - v, 3)),
}
SCENARIOS = ("skew bug", "harmless: another sample, same week", "harmless: next week's retrain")


def bake(template: Path, out_dir: Path) -> Path:
    """Bake the template with default answers into ``out_dir``; return the project folder."""
    from cookiecutter.main import cookiecutter

    return Path(cookiecutter(str(template), no_input=True, output_dir=str(out_dir)))


def find_package(project: Path) -> tuple[Path, str]:
    """Return (src folder, package name) of a baked project."""
    packages = sorted(path.parent.name for path in (project / "src").glob("*/guard.py"))
    if len(packages) != 1:
        raise SystemExit(f"ERROR: expected one package with a guard.py under {project / 'src'}, found {packages}")
    return project / "src", packages[0]


def import_package(src: Path, package: str) -> dict:
    """Put ``src`` first on sys.path and import the modules the benchmark uses."""
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    names = ("config", "data", "features", "gate", "production.guard", "synthetic", "train")
    return {name: importlib.import_module(f"{package}.{name}") for name in names}


@dataclass(frozen=True)
class Job:
    """What one worker needs to run one seed."""

    src: Path
    package: str
    train_rows: int
    weekly_rows: tuple[int, ...]
    min_cost: float
    max_cost: float


def run_seed(job: Job, seed: int) -> list[dict]:
    """Run one seed with one BLAS thread: the worker processes already use the cores."""
    with threadpool_limits(limits=1):
        return guard_one_week(job, seed)


def guard_one_week(job: Job, seed: int) -> list[dict]:
    """Train production, the harmless promotions and a skew bug; replay a week of labels day by day."""
    modules = import_package(job.src, job.package)
    data, evaluate, guard, train = modules["data"], modules["gate"], modules["production.guard"], modules["train"]
    synthetic = modules["synthetic"]
    gate_module = modules["gate"]
    settings = modules["config"].Settings()
    gate, names = settings.gate, modules["features"].feature_names()
    rng = np.random.default_rng(seed)
    week = int(rng.integers(1, 7))

    production = train.fit(synthetic.synthetic_transactions(job.train_rows, week - 1, seed), seed)
    fresh = synthetic.synthetic_transactions(job.train_rows, week, seed + SAMPLE_SEED_OFFSET)
    same_week = synthetic.synthetic_transactions(job.train_rows, week - 1, seed + SAMPLE_SEED_OFFSET)
    reference = synthetic.synthetic_transactions(REFERENCE_ROWS, week, 1)  # one per week, shared by every seed

    def cost_of(model) -> float:
        """AUC points the model loses against production on the reference rows (its true cost)."""
        aucs = [evaluate.auc_estimate(reference.y, m.predict_proba(reference.X)[:, 1]).auc for m in (production, model)]
        return aucs[0] - aucs[1]

    candidates = {SCENARIOS[1]: train.fit(same_week, seed), SCENARIOS[2]: train.fit(fresh, seed)}
    holdout = synthetic.synthetic_transactions(settings.holdout_rows, week, seed + synthetic.HOLDOUT_SEED_OFFSET)
    holdouts = {SCENARIOS[1]: holdout, SCENARIOS[2]: holdout}  # what the gate scores each candidate on
    costs = {}
    for name in rng.permutation(list(SKEWS)):  # the first bug, in a random order, that costs enough
        feature, skew = SKEWS[name]
        X = fresh.X.copy()
        X[:, names.index(feature)] = skew(X[:, names.index(feature)])
        model = train.fit(data.Dataset(X, fresh.y), seed)
        cost = cost_of(model)
        if job.min_cost <= cost < job.max_cost:
            candidates[SCENARIOS[0]], costs[SCENARIOS[0]] = model, (str(name), cost)
            skewed = holdout.X.copy()  # the export's holdout carries the same skew
            skewed[:, names.index(feature)] = skew(skewed[:, names.index(feature)])
            holdouts[SCENARIOS[0]] = data.Dataset(skewed, holdout.y)
            break
    for name in SCENARIOS[1:]:  # a seed where no bug costs enough keeps only the harmless promotions
        costs[name] = ("", cost_of(candidates[name]))

    live = synthetic.synthetic_transactions(max(job.weekly_rows), week, seed + LIVE_SEED_OFFSET)
    old = production.predict_proba(live.X)[:, 1]
    rows = []
    for name, model in candidates.items():
        offline = holdouts[name]
        comparison = evaluate.compare_aucs(
            offline.y, model.predict_proba(offline.X)[:, 1], production.predict_proba(offline.X)[:, 1], gate.confidence
        )
        gate_passes = gate_module.decide(comparison.candidate, comparison, gate)[0] == "pass"
        new = model.predict_proba(live.X)[:, 1]
        for weekly in job.weekly_rows:
            decision, day = "wait", None
            for day_number in range(1, DAYS + 1):  # the daily guard run, on every row labelled so far
                seen = weekly * day_number // DAYS
                decision, _, _ = guard.decide(live.y[:seen], new[:seen], old[:seen], gate, settings.guard_min_rows)
                if decision != "wait":
                    day = day_number
                    break
            bug, cost = costs[name]
            rows.append(
                {"seed": seed, "week": week, "scenario": name, "weekly": weekly, "decision": decision, "day": day,
                 "bug": bug, "cost": cost, "gate_passes": gate_passes, "rolled": decision == "rollback"}
            )  # fmt: skip
    return rows


def summarise(rows: list[dict], weekly_rows: tuple[int, ...]) -> tuple[str, dict]:
    """The Markdown table, and per weekly volume whether both targets were met."""
    header = ["live rows a week", "promotion", "seeds", "mean AUC cost", "offline gate passed", "rolled back",
              "confirmed", "still waiting", "mean day of the decision"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    met = {}
    for weekly in weekly_rows:
        ok = True
        for name in SCENARIOS:
            group = [row for row in rows if row["weekly"] == weekly and row["scenario"] == name]
            share = {d: np.mean([row["decision"] == d for row in group]) for d in ("rollback", "confirm", "wait")}
            days = [row["day"] for row in group if row["day"] is not None]
            ok &= share["rollback"] >= TARGET_BUGS if name == SCENARIOS[0] else share["rollback"] <= TARGET_HARMLESS
            cells = [f"{weekly:,}", name, str(len(group)), f"{np.mean([row['cost'] for row in group]):+.4f}",
                     f"{100 * np.mean([row['gate_passes'] for row in group]):.1f}%",
                     *(f"{100 * share[d]:.1f}%" for d in ("rollback", "confirm", "wait")),
                     f"{np.mean(days):.1f}" if days else "-"]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        met[weekly] = bool(ok)
    return "\n".join(lines), met


def bug_mix(rows: list[dict], weekly_rows: tuple[int, ...]) -> list[str]:
    """How the skew bugs were spread: their AUC cost, the near-the-bar ones, and each kind with its rollback rate."""
    bugs = [row for row in rows if row["scenario"] == SCENARIOS[0]]
    costs = np.array([row["cost"] for row in bugs if row["weekly"] == weekly_rows[0]])
    lines = [f"AUC cost of the skew bugs: min {costs.min():.4f}, median {np.median(costs):.4f}, max {costs.max():.4f}"]
    for weekly in weekly_rows:
        week = [row for row in bugs if row["weekly"] == weekly]
        for label, group in (
            ("cost less than 3 points", [row for row in week if row["cost"] < 0.03]),
            ("passed the offline gate", [row for row in week if row["gate_passes"]]),
        ):
            rolled = f"{np.mean([row['decision'] == 'rollback' for row in group]):.1%}" if group else "-"
            lines.append(f"- {weekly:,} rows a week: {len(group)} bug(s) {label}; rolled back: {rolled}")
    lines.append(f"By kind, at {weekly_rows[0]:,} rows a week:")
    for kind in sorted({row["bug"] for row in bugs}):
        group = [row for row in bugs if row["bug"] == kind and row["weekly"] == weekly_rows[0]]
        rolled, passed = (np.mean([row[key] for row in group]) for key in ("rolled", "gate_passes"))
        lines.append(f"- {kind}: {len(group)} seeds, offline gate passed {passed:.0%}, rolled back {rolled:.0%}")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="baked project folder (default: bake the template to a temp dir)")
    parser.add_argument("--seeds", type=int, default=200, help="number of seeds, 0..N-1 (default 200)")
    parser.add_argument(
        "--weekly-rows", default="20000,50000,100000", help="live rows a week, comma-separated (20000,50000,100000)"
    )
    parser.add_argument("--min-cost", type=float, default=0.02, help="smallest AUC cost of a skew bug (0.02)")
    parser.add_argument("--max-cost", type=float, default=1.0, help="AUC cost a skew bug stays below (1: no limit)")
    parser.add_argument("--train-rows", type=int, help="training rows (default: the project's settings.train_rows)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the Markdown report."""
    args = parse_args(argv)
    weekly_rows = tuple(int(size) for size in args.weekly_rows.split(","))
    with ExitStack() as stack:
        project = args.project
        if project is None:
            project = bake(TEMPLATE, Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-bake-"))))
            print(f"baked {TEMPLATE} into {project}", file=sys.stderr)
        src, package = find_package(project.resolve())
        settings = import_package(src, package)["config"].Settings()
        job = Job(src, package, args.train_rows or settings.train_rows, weekly_rows, args.min_cost, args.max_cost)
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            rows = [row for seed_rows in pool.map(run_seed, [job] * args.seeds, range(args.seeds)) for row in seed_rows]
        elapsed = time.perf_counter() - started

    gate = settings.gate
    table, met = summarise(rows, weekly_rows)
    print(
        f"# Guard power: {args.seeds} seeds, live weeks 1 to 6, {job.train_rows:,} training rows, a look a day, "
        f"guard_min_rows {settings.guard_min_rows:,}, max_auc_drop {gate.max_auc_drop}, confidence {gate.confidence}\n"
    )
    print(table)
    print()
    print("\n".join(bug_mix(rows, weekly_rows)))
    missing = args.seeds - len({row["seed"] for row in rows if row["scenario"] == SCENARIOS[0]})
    band = f"from {args.min_cost} to {args.max_cost}" if args.max_cost < 1 else f"{args.min_cost} or more"
    print(f"\n{missing} seed(s) found no skew bug costing {band}: left out of the bug rows.")
    print(
        f"\nTargets: skew bugs costing >= {args.min_cost} rolled back within the week in >= {TARGET_BUGS:.0%} of "
        f"seeds; harmless promotions rolled back in <= {TARGET_HARMLESS:.0%}."
    )
    for weekly in weekly_rows:
        print(f"- {weekly:,} live rows a week: {'both targets met' if met[weekly] else 'a target missed'}")
    print(f"\n{len(rows)} guarded weeks in {elapsed:.0f} s with {args.jobs} worker(s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
