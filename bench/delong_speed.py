"""Time the gate's DeLong code on a million rows, against scikit-learn's roc_auc_score for the AUC alone.

Usage (from the template repository):

    python bench/delong_speed.py                       # bakes the template into a temp dir first
    python bench/delong_speed.py --project /tmp/x/fraud-detector --rows 1000000 --repeats 7

Two correlated score vectors (a candidate and a production model) on ``--rows`` rows with
about 3% positives; every timing is the median of ``--repeats`` runs. A second data set
rounds the scores to 3 decimals, so most rows share their score with others (ties take
the mid-rank path).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from gate_quality import import_package, open_project
from sklearn.metrics import roc_auc_score


def make_scores(rows: int, seed: int, decimals: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return labels (~3% positives) and two correlated score vectors, optionally rounded."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.03).astype(np.int8)
    signal = 1.8 * y + rng.normal(size=rows)
    candidate = 1 / (1 + np.exp(-(signal + 0.5 * rng.normal(size=rows))))
    production = 1 / (1 + np.exp(-(signal + 0.5 * rng.normal(size=rows))))
    if decimals is not None:
        candidate, production = candidate.round(decimals), production.round(decimals)
    return y, candidate, production


def median_seconds(call, repeats: int) -> float:
    """Median wall time of ``call()`` over ``repeats`` runs, after one warm-up run."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def timed_calls(evaluate, y: np.ndarray, candidate: np.ndarray, production: np.ndarray) -> list[tuple]:
    """Return (name, what it computes, zero-argument call) for each timed call."""
    both = np.vstack([candidate, production])
    return [
        ("`evaluate.delong(y, [a, b])`", "2 AUCs + 2x2 covariance", lambda: evaluate.delong(y, both)),
        ("`evaluate.auc_estimate(y, a)`", "1 AUC + CI", lambda: evaluate.auc_estimate(y, candidate)),
        (
            "`evaluate.compare_aucs(y, a, b)`",
            "the gate's whole comparison",
            lambda: evaluate.compare_aucs(y, candidate, production),
        ),
        ("`sklearn roc_auc_score(y, a)`", "1 AUC, no variance", lambda: roc_auc_score(y, candidate)),
        (
            "`sklearn roc_auc_score` x2",
            "2 AUCs, no variance",
            lambda: (roc_auc_score(y, candidate), roc_auc_score(y, production)),
        ),
    ]


def pairwise_delong(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's original O(m n) definition: AUCs and covariance from every positive-negative pair."""
    positives, negatives = scores[:, y == 1], scores[:, y == 0]
    kernel = (positives[:, :, None] > negatives[:, None, :]) + 0.5 * (positives[:, :, None] == negatives[:, None, :])
    v_pos, v_neg = kernel.mean(axis=2), kernel.mean(axis=1)
    covariance = np.cov(v_pos) / positives.shape[1] + np.cov(v_neg) / negatives.shape[1]
    return kernel.mean(axis=(1, 2)), covariance


def check(evaluate, y: np.ndarray, candidate: np.ndarray, production: np.ndarray, small: int) -> str:
    """Compare the fast code with roc_auc_score on all rows and with the pairwise definition on ``small`` rows."""
    both = np.vstack([candidate, production])
    aucs, _ = evaluate.delong(y, both)
    reference = np.array([roc_auc_score(y, candidate), roc_auc_score(y, production)])
    fast_aucs, fast_cov = evaluate.delong(y[:small], both[:, :small])
    slow_aucs, slow_cov = pairwise_delong(y[:small], both[:, :small])
    comparison = evaluate.compare_aucs(y, candidate, production)
    return (
        f"{int(y.sum()):,} positives; AUCs {aucs[0]:.6f} and {aucs[1]:.6f}, "
        f"largest difference from roc_auc_score {np.abs(aucs - reference).max():.1e}; "
        f"on the first {small:,} rows, largest difference from the pairwise O(mn) DeLong: "
        f"AUC {np.abs(fast_aucs - slow_aucs).max():.1e}, covariance {np.abs(fast_cov - slow_cov).max():.1e}; "
        f"paired difference {comparison.difference:+.5f}, SE {comparison.std_error:.5f}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="baked project folder (default: bake the template to a temp dir)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per score vector (default 1,000,000)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (default 7)")
    parser.add_argument("--check-rows", type=int, default=5_000, help="rows for the O(mn) check (default 5,000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic scores (default 0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Bake or open the project, then run the timings."""
    args = parse_args(argv)
    with ExitStack() as stack:
        src, package = open_project(args.project, stack)
        report(import_package(src, package)["gate"], args)
    return 0


def report(evaluate, args: argparse.Namespace) -> None:
    """Time each call on both data sets and print a Markdown table and a correctness check."""
    print(f"# DeLong speed: {args.rows:,} rows, median of {args.repeats} runs\n")
    print("| scores | call | what it computes | median seconds |")
    print("|---|---|---|---|")
    checks = []
    for label, decimals in (("continuous", None), ("rounded to 3 decimals (ties)", 3)):
        y, candidate, production = make_scores(args.rows, args.seed, decimals)
        for name, what, call in timed_calls(evaluate, y, candidate, production):
            print(f"| {label} | {name} | {what} | {median_seconds(call, args.repeats):.3f} |")
        checks.append(f"- {label}: {check(evaluate, y, candidate, production, args.check_rows)}")
    print("\n" + "\n".join(checks))


if __name__ == "__main__":
    sys.exit(main())
