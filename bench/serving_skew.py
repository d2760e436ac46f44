"""Prove the score_staging stage with numbers: serving bugs it catches, harmless changes it lets through, its cost.

Usage (from the template repository, with the template's tooling environment: cookiecutter and uv):

    python bench/serving_skew.py                  # 200 seeds; bakes the template into a temp dir first
    python bench/serving_skew.py --quick          # a smoke run: 5 seeds, 2 timing runs
    python bench/serving_skew.py --project /tmp/x/fraud-detector --seeds 50   # a bake already `uv sync`ed

The measurement runs inside the bake's own venv: this script bakes the template (default answers), installs it
with `uv sync --locked --extra test`, and runs itself again with the bake's interpreter (`--inside`).

For every seed ``s`` it writes the synthetic week 0 (``sources.prepare``, seed ``s``), trains a model with seed
``s``, registers it and promotes it to production and to staging, and serves staging in process (the Flask app
factory under werkzeug's ``make_server`` on 127.0.0.1, in a thread). Then, for each case, it replaces
``service.Serving.matrix`` (the float matrix built from validated rows) and runs the real
``staging.score_staging``:

* serving bugs, each calibrated offline on the seed's holdout (the clean model scoring the bugged matrix) and kept
  only when it costs 1 to 3 AUC points: one column rescaled (a unit conversion, the factor chosen per seed), two
  columns swapped, ``card_present`` inverted, a column clipped (the cap chosen per seed), ``hour`` shifted by a
  time zone;
* harmless changes: the matrix built another way (row lists, or column by column by name), a no-op unit round trip
  (x * 100 / 100), and float32 inputs (reported apart if they move a score by more than the 1e-6 tolerance).

A case is caught when the skew check finds a differing row or the gate does not pass. For caught skew, the trace
is right when ``skew.suspects`` names exactly the bugged features. Last, it times ``score_staging`` at the
project's default holdout size against the pipeline's own staging server (gunicorn, ``pipeline.staging_server``),
for batch sizes 100, 250, 500 and 1,000 rows (``staging.BATCH_ROWS``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

try:
    import numpy as np
except ModuleNotFoundError:  # the outer run (bake and install) needs no numpy: the bake's venv has it
    np = None

TEMPLATE = Path(__file__).resolve().parent.parent
LOW, HIGH = 0.01, 0.03  # the AUC cost of the bugs kept: 1 to 3 points
BATCHES = (100, 250, 500, 1_000)
CATCH_TARGET, BLOCK_TARGET, SECONDS_TARGET = 0.95, 0.01, 2.0


# --------------------------------------------------------------------------------------------------------------
# outside: bake, install, run again inside the bake's venv
# --------------------------------------------------------------------------------------------------------------
def bake_and_install(out_dir: Path) -> Path:
    """Bake the template with default answers into ``out_dir`` and install it; return the project folder."""
    from cookiecutter.main import cookiecutter

    project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(out_dir), extra_context={"init_git": "n"}))
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    command = [uv, "sync", "-q", "--locked", "--extra", "test", "--compile-bytecode", "--directory", str(project)]
    subprocess.run(command, check=True)
    return project


def outside(args: argparse.Namespace, argv: list[str]) -> int:
    """Bake (unless --project) and run this script in the bake's interpreter."""
    with tempfile.TemporaryDirectory(prefix="bench-skew-") as tmp:
        project = args.project.resolve() if args.project else bake_and_install(Path(tmp))
        print(f"project: {project}", file=sys.stderr)
        python = project / ".venv" / "bin" / "python"
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        command = [str(python), str(Path(__file__).resolve()), *argv, "--inside", str(project)]
        return subprocess.run(command, env=environment, cwd=project, check=False).returncode


# --------------------------------------------------------------------------------------------------------------
# inside: the bake's own code
# --------------------------------------------------------------------------------------------------------------
def import_project(project: Path) -> dict:
    """Import the bake's modules (its src first on sys.path)."""
    src = project / "src"
    packages = sorted(path.parent.name for path in src.glob("*/staging.py"))
    if len(packages) != 1:
        raise SystemExit(f"ERROR: expected one package with a staging.py under {src}, found {packages or 'none'}")
    sys.path.insert(0, str(src))
    names = ("artifact", "config", "data", "gate", "pipeline", "registry", "service", "sources", "staging", "train")
    return {name: importlib.import_module(f"{packages[0]}.{name}") for name in names}


def auc(y, scores) -> float:
    """The AUC (scikit-learn's, for the calibration only)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))


def rescale(column: int, factor: float):
    """One column in other units."""

    def bug(X):
        X[:, column] *= factor
        return X

    return bug


def swap(first: int, second: int):
    """Two columns swapped."""

    def bug(X):
        X[:, [first, second]] = X[:, [second, first]]
        return X

    return bug


def invert(column: int):
    """A bool column mapped the wrong way."""

    def bug(X):
        X[:, column] = 1.0 - X[:, column]
        return X

    return bug


def clip(column: int, cap: float):
    """A column capped (a field too narrow on the way in)."""

    def bug(X):
        np.minimum(X[:, column], cap, out=X[:, column])
        return X

    return bug


def shift_hour(column: int, hours: int):
    """The hour in another time zone."""

    def bug(X):
        X[:, column] = (X[:, column] + hours) % 24
        return X

    return bug


def calibrate(X, y, model, names: list[str], seed: int) -> dict:
    """Per bug kind, the instance whose offline AUC cost is nearest a target drawn in [LOW, HIGH]; None if none fits.

    Each value: (description, bugged feature names, transform, offline AUC cost).
    """
    rng = np.random.default_rng(seed)
    clean = auc(y, model.probability(X))
    numeric = [name for name in names if name not in ("card_present",)]

    def best(candidates):
        target = rng.uniform(LOW, HIGH)
        found = []
        for description, features, transform in candidates:
            cost = clean - auc(y, model.probability(transform(X.copy())))
            if LOW <= cost <= HIGH:
                found.append((abs(cost - target), description, features, transform, cost))
        if not found:
            return None
        _, description, features, transform, cost = min(found, key=lambda item: item[0])
        return description, features, transform, cost

    factors = [10 ** (k / 20) for k in range(-60, 61) if k]
    column = numeric[seed % len(numeric)]
    kinds = {
        "one column rescaled": best(
            (f"{column} x{factor:.3g}", (column,), rescale(names.index(column), factor)) for factor in factors
        ),
        "two columns swapped": best(
            (f"{a} <-> {b}", (a, b), swap(names.index(a), names.index(b)))
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        ),
    }
    if "card_present" in names:
        kinds["bool inverted"] = best(
            [("card_present inverted", ("card_present",), invert(names.index("card_present")))]
        )
    capped = numeric[(seed // len(numeric) + seed) % len(numeric)]
    values = X[:, names.index(capped)]
    caps = sorted({float(np.quantile(values, q)) for q in np.linspace(0.02, 0.998, 100)})
    kinds["one column clipped"] = best(
        (f"{capped} capped at {cap:.4g}", (capped,), clip(names.index(capped), cap)) for cap in caps
    )
    if "hour" in names:
        kinds["hour shifted"] = best(
            (f"hour in UTC{hours:+d}", ("hour",), shift_hour(names.index("hour"), hours)) for hours in range(1, 24)
        )
    return kinds


def harmless_changes(original) -> dict:
    """Changes to the service's input path that should not change a score: name -> Serving.matrix replacement."""

    def row_lists(self, rows):
        return np.array([[float(row[name]) for name in self.names] for row in rows], dtype=float)

    def by_column(self, rows):  # a no-op refactor: columns gathered by name, then put in the model's order
        columns = {name: [row[name] for row in rows] for name in reversed(self.names)}
        return np.column_stack([np.asarray(columns[name], dtype=float) for name in self.names]).reshape(len(rows), -1)

    def round_trip(self, rows):  # units converted and back: values may move by one float ulp
        return original(self, rows) * 100.0 / 100.0

    def float32(self, rows):
        return original(self, rows).astype(np.float32).astype(float)

    return {
        "as shipped (no change)": original,
        "matrix built from row lists": row_lists,
        "no-op refactor: by column": by_column,
        "unit round trip x100/100": round_trip,
        "float32 inputs": float32,
    }


@contextmanager
def patched(service, matrix):
    """Serving.matrix replaced for the duration (the server runs in this process)."""
    original = service.Serving.matrix
    service.Serving.matrix = matrix
    try:
        yield
    finally:
        service.Serving.matrix = original


@contextmanager
def serve_in_process(app):
    """The app on a free 127.0.0.1 port in a thread, as the generated tests' ``serve`` fixture; yields its URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def deploy(m: dict, settings, folder: Path, seed: int):
    """Week 0 with ``seed``, a model trained with it, promoted to production and staging; (registry, version, csvs)."""
    settings = replace(
        settings, seed=seed, registry=folder / "registry", data_dir=folder / "data", artifacts=folder / "artifacts"
    )
    files = m["sources"].prepare(settings, 0)
    candidate, metadata = m["train"].train(files.train, files.holdout, settings.artifacts, seed, source=files.lineage)
    registry = m["registry"].Registry(settings.registry)
    version = registry.register(candidate, reason="bench")
    registry.promote(version, "production", reason="bench")
    registry.promote(version, "staging", reason="bench")
    return registry, version, files


def run_seed(m: dict, settings, seed: int, work: Path) -> list[dict]:
    """Every case of one seed, through score_staging against the in-process service."""
    service, staging = m["service"], m["staging"]
    folder = work / f"seed-{seed}"
    registry, version, files = deploy(m, settings, folder, seed)
    model_dir = registry.folder(version)
    model = m["artifact"].load(model_dir)
    names = [feature.name for feature in model.features]
    holdout = m["data"].read_csv(files.holdout, model.features)
    offline = model.probability(holdout.X)
    original = service.Serving.matrix

    cases = []
    for kind, found in calibrate(holdout.X, holdout.y, model, names, seed).items():
        if found is None:
            cases.append({"seed": seed, "group": "bug", "kind": kind, "usable": False})
            continue
        description, features, transform, cost = found

        def bugged(self, rows, transform=transform):
            return transform(original(self, rows))

        cases.append(
            {"seed": seed, "group": "bug", "kind": kind, "usable": True, "what": description}
            | {"features": set(features), "cost": cost, "matrix": bugged}
        )
    # the validated rows as the service holds them, to see offline whether a change moves a score beyond 1e-6
    sample = [SimpleNamespace(**dict(zip(names, row, strict=True))) for row in holdout.X.tolist()]
    shadow = SimpleNamespace(names=names)
    for kind, matrix in harmless_changes(original).items():
        moved = float(np.abs(model.probability(matrix(shadow, sample)) - offline).max())
        cases.append(
            {"seed": seed, "group": "harmless", "kind": kind, "usable": True, "moved": moved, "matrix": matrix}
        )

    app = service.create_app({"REGISTRY": str(registry.root), "STAGE": "staging", "RELOAD_INTERVAL": 0})
    production = registry.folder(registry.current("production"))
    with serve_in_process(app) as base:
        for case in cases:
            if not case["usable"]:
                continue
            with patched(service, case.pop("matrix")):
                started = time.perf_counter()
                skew, gate = staging.score_staging(base, model_dir, files.holdout, production, settings.gate)
                case["seconds"] = time.perf_counter() - started
            case |= {"differing": skew.differing, "largest": skew.largest, "suspects": set(skew.suspects)}
            case |= {"gate": gate.decision, "caught": skew.differing > 0 or gate.exit_code != 0}
    shutil.rmtree(folder, ignore_errors=True)
    for case in cases:
        case.pop("matrix", None)
    return cases


def time_batches(m: dict, settings, work: Path, repeats: int) -> dict:
    """Seconds of score_staging at the default holdout size against the pipeline's gunicorn staging server."""
    staging, pipeline = m["staging"], m["pipeline"]
    registry, version, files = deploy(m, settings, work / "timing", settings.seed)
    model_dir = registry.folder(version)
    times = {batch: [] for batch in BATCHES}
    parts = {"served_scores": [], "run_gate": []}
    shipped = staging.BATCH_ROWS
    with pipeline.staging_server(registry.root) as base:
        model = m["artifact"].load(model_dir)
        X = m["data"].read_csv(files.holdout, model.features).X
        for round_ in range(repeats + 1):  # the first round warms up; batch sizes interleaved
            for batch in BATCHES:
                staging.BATCH_ROWS = batch
                started = time.perf_counter()
                skew, gate = staging.score_staging(base, model_dir, files.holdout, model_dir, settings.gate)
                if round_:
                    times[batch].append(time.perf_counter() - started)
                if skew.differing or gate.exit_code:
                    raise SystemExit(f"ERROR: the clean staging service failed score_staging: {skew}, {gate.reasons}")
            staging.BATCH_ROWS = shipped
            started = time.perf_counter()
            staging.served_scores(base, model.features, X)
            middle = time.perf_counter()
            m["gate"].run_gate(model_dir, files.holdout, model_dir, settings.gate)
            if round_:
                parts["served_scores"].append(middle - started)
                parts["run_gate"].append(time.perf_counter() - middle)
    staging.BATCH_ROWS = shipped
    return {"rows": len(X), "batches": times, "parts": parts, "shipped": shipped}


def share(part: int, whole: int) -> str:
    """``part/whole (x%)``."""
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "0/0"


def report(cases: list[dict], timing: dict, seeds: int, rows: int, elapsed: float) -> None:
    """Print the Markdown tables and the targets."""
    print(f"# Scored staging: {seeds} seeds, synthetic week 0, {rows:,} training and holdout rows per seed\n")
    print("| case | kind | usable seeds | mean AUC cost | caught | by skew | by gate | trace exact | trace names it |")
    print("|---|---|---|---|---|---|---|---|---|")
    bugs = [case for case in cases if case["group"] == "bug"]
    for kind in dict.fromkeys(case["kind"] for case in bugs):
        group = [case for case in bugs if case["kind"] == kind and case["usable"]]
        found = [case for case in group if case["differing"]]
        cost = f"{np.mean([case['cost'] for case in group]):.4f}" if group else "-"
        exact = sum(case["suspects"] == case["features"] for case in found)
        names = sum(case["features"] <= case["suspects"] for case in found)
        print(
            f"| bug | {kind} | {len(group)}/{seeds} | {cost} | {share(sum(c['caught'] for c in group), len(group))} "
            f"| {share(len(found), len(group))} | {share(sum(c['gate'] != 'pass' for c in group), len(group))} "
            f"| {share(exact, len(found))} | {share(names, len(found))} |"
        )
    usable = [case for case in bugs if case["usable"]]
    found = [case for case in usable if case["differing"]]
    caught = sum(case["caught"] for case in usable)
    print(
        f"| **bug** | **all kinds** | {len(usable)} | {np.mean([c['cost'] for c in usable]) if usable else 0:.4f} "
        f"| **{share(caught, len(usable))}** | {share(len(found), len(usable))} "
        f"| {share(sum(c['gate'] != 'pass' for c in usable), len(usable))} "
        f"| {share(sum(c['suspects'] == c['features'] for c in found), len(found))} "
        f"| {share(sum(c['features'] <= c['suspects'] for c in found), len(found))} |"
    )
    harmless = [case for case in cases if case["group"] == "harmless"]
    truly = []
    for kind in dict.fromkeys(case["kind"] for case in harmless):
        group = [case for case in harmless if case["kind"] == kind]
        moved = max(case["moved"] for case in group)
        changes = sum(case["moved"] > 1e-6 for case in group)
        truly += [case for case in group if case["moved"] <= 1e-6]
        print(
            f"| harmless | {kind} | {len(group)}/{seeds} | offline max abs Δscore {moved:.1e}"
            f"{f', beyond 1e-6 in {changes} seeds' if changes else ''} "
            f"| blocked {share(sum(c['caught'] for c in group), len(group))} "
            f"| {share(sum(c['differing'] > 0 for c in group), len(group))} "
            f"| {share(sum(c['gate'] != 'pass' for c in group), len(group))} | - | - |"
        )
    blocked = sum(case["caught"] for case in truly)
    print(
        f"| **harmless** | **all (scores within 1e-6)** | {len(truly)} | - | **blocked {share(blocked, len(truly))}** "
        "| | | - | - |"
    )

    print(
        f"\nscore_staging in process (werkzeug thread server, {rows:,} rows), median "
        f"{statistics.median(c['seconds'] for c in cases if 'seconds' in c):.2f} s per case."
    )
    batches = timing["batches"]
    print(
        f"\nscore_staging against the pipeline's gunicorn staging server, {timing['rows']:,} holdout rows "
        f"(the default), median of {len(batches[BATCHES[0]])} runs:\n"
    )
    print("| staging.BATCH_ROWS | requests | median s | min s | max s |")
    print("|---|---|---|---|---|")
    for batch, values in batches.items():
        mark = " (shipped)" if batch == timing["shipped"] else ""
        print(
            f"| {batch:,}{mark} | {-(-timing['rows'] // batch)} | {statistics.median(values):.2f} "
            f"| {min(values):.2f} | {max(values):.2f} |"
        )
    for part, values in timing["parts"].items():
        print(f"- {part} alone (shipped batch size): median {statistics.median(values):.2f} s")
    seconds = statistics.median(batches[timing["shipped"]])
    rate = caught / len(usable) if usable else 0.0
    blocked_rate = blocked / len(truly) if truly else 0.0
    print("\nTargets:")
    verdict = "met" if rate >= CATCH_TARGET else "MISSED"
    print(f"- bugs costing 1 to 3 points caught in >= {CATCH_TARGET:.0%}: {rate:.1%}: {verdict}")
    print(
        f"- harmless changes blocked in <= {BLOCK_TARGET:.0%}: {blocked_rate:.1%}: "
        f"{'met' if blocked_rate <= BLOCK_TARGET else 'MISSED'}"
    )
    print(
        f"- at most {SECONDS_TARGET:.0f} s added at {timing['rows']:,} holdout rows: {seconds:.2f} s: "
        f"{'met' if seconds <= SECONDS_TARGET else 'MISSED'}"
    )
    print(
        f"\n{sum('seconds' in c for c in cases)} score_staging runs in {elapsed:.0f} s, one process (and the timing's "
        f"gunicorn server), {os.cpu_count()} cores."
    )


def inside(args: argparse.Namespace) -> int:
    """Run the measurement with the bake's code."""
    logging.disable(logging.INFO)  # the service logs each model it loads, werkzeug each request
    m = import_project(args.inside)
    defaults = m["config"].load_settings(args.inside / "pyproject.toml")
    rows = args.rows or defaults.holdout_rows
    settings = replace(defaults, train_rows=args.rows or defaults.train_rows, holdout_rows=rows)
    seeds = 5 if args.quick and args.seeds is None else args.seeds or 200
    started = time.perf_counter()
    cases = []
    with tempfile.TemporaryDirectory(prefix="bench-skew-run-") as tmp:
        for seed in range(seeds):
            cases += run_seed(m, settings, seed, Path(tmp))
            if (seed + 1) % 10 == 0:
                print(f"{seed + 1} seeds, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        elapsed = time.perf_counter() - started
        timing = time_batches(m, defaults, Path(tmp), 2 if args.quick else args.repeats)
    report(cases, timing, seeds, rows, elapsed)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a baked project already installed with uv sync (default: bake)")
    parser.add_argument("--seeds", type=int, help="number of seeds, 0..N-1 (default 200; 5 with --quick)")
    parser.add_argument("--rows", type=int, help="training and holdout rows per seed (default: the project's)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per batch size (default 7)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 seeds, 2 timed runs per batch size")
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)  # set by the outer run: the bake to measure
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Bake and re-run inside the bake, or (inside) measure and print the report."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return inside(args) if args.inside else outside(args, argv)


if __name__ == "__main__":
    sys.exit(main())
