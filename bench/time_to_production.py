"""Time from `cookiecutter --no-input` to a smoke-tested production model, following the README's quickstart.

Usage (from the template repository, with cookiecutter installed):

    python bench/time_to_production.py                 # uv as in the README: one warm-up run, then one timed run
    python bench/time_to_production.py --installer pip # the same with pip, ignoring uv.lock (the old README)
    python bench/time_to_production.py --repeat 3 --no-warm-up

Each run works in a fresh temporary folder: bake the template with default answers, install the project with its
test extra from its lock (`uv sync --locked --extra test --compile-bytecode`, the README's command), and run
`<slug> pipeline`: the project's tests (all but those marked slow), data, training, the AUC gate, registration, a
staging service on a free 127.0.0.1 port with its smoke test, and the promotion to production. The warm-up run
fills the package cache, so the timed runs measure a machine that has installed these packages before (nothing is
downloaded when the cache is warm). The script prints each step's time and the pipeline's stage times as a Markdown
table, and checks that production points at the model the pipeline trained.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent
STEP_TIMEOUT = 900  # seconds; a step that takes longer has hung


def timed(command: list, cwd: Path, env: dict, lines: list[tuple[float, str]] | None = None) -> float:
    """Run a command to completion; return its seconds. With ``lines``, record when each output line appeared."""
    started = time.monotonic()
    process = subprocess.Popen(
        [str(part) for part in command], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = []
    for line in process.stdout:
        output.append(line)
        if lines is not None:
            lines.append((time.monotonic() - started, line.rstrip()))
    process.wait(timeout=STEP_TIMEOUT)
    if process.returncode:
        raise SystemExit(
            f"ERROR: {' '.join(map(str, command))} exited {process.returncode}:\n{''.join(output)[-3000:]}"
        )
    return time.monotonic() - started


def stage_times(lines: list[tuple[float, str]]) -> dict[str, float]:
    """Seconds per pipeline stage, as its `[n/N] stage  12.3 s  result` line says."""
    stages = [re.match(r"\[\d+/\d+\] (\w+) +([\d.]+) s ", line) for _, line in lines]
    return {match.group(1): float(match.group(2)) for match in stages if match}


def one_run(installer: str) -> dict[str, float]:
    """Bake, install and run the pipeline in a fresh folder; return seconds per step and per pipeline stage."""
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "MODEL_REGISTRY")}
    env["PYTHONUNBUFFERED"] = "1"  # each stage line arrives when printed, so the stage times are right
    with tempfile.TemporaryDirectory(prefix="bench-ttp-") as tmp:
        out = Path(tmp)
        steps: dict[str, float] = {}
        steps["bake"] = timed([sys.executable, "-m", "cookiecutter", "--no-input", TEMPLATE, "-o", out], out, env)
        (project,) = [path for path in out.iterdir() if path.is_dir()]
        python = project / ".venv" / "bin" / "python"
        if installer == "uv":
            # the README's command: the locked environment, checked against pyproject.toml, in .venv
            steps["venv"] = 0.0
            install = [
                sys.executable,
                "-m",
                "uv",
                "sync",
                "--locked",
                "--quiet",
                "--extra",
                "test",
                "--compile-bytecode",
            ]
        else:
            steps["venv"] = timed([sys.executable, "-m", "venv", ".venv"], project, env)
            install = [python, "-m", "pip", "install", "-q", "-e", ".[test]"]
        steps["install"] = timed(install, project, env)
        scripts = [path for path in (project / ".venv" / "bin").iterdir() if path.name == project.name]
        lines: list[tuple[float, str]] = []
        steps["pipeline"] = timed([scripts[0], "pipeline"], project, env, lines)
        production = (project / "registry" / "stages" / "production").read_text().strip()
        trained = next(line for _, line in lines if re.match(r"\[\d+/\d+\] train_model ", line))
        if production not in trained:
            raise SystemExit(f"ERROR: production is {production}, but the pipeline said: {trained}")
        steps["total"] = sum(steps.values())
        return {**steps, **{f"pipeline: {name}": seconds for name, seconds in stage_times(lines).items()}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--installer", choices=["pip", "uv"], default="uv", help="uv as in the README, or pip")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs; the table shows medians (default 1)")
    parser.add_argument("--no-warm-up", action="store_true", help="skip the untimed run that warms the cache")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Warm the cache, time the runs, print the Markdown table."""
    args = parse_args(argv)
    if (
        args.installer == "uv"
        and not shutil.which("uv")
        and subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True).returncode
    ):
        raise SystemExit("ERROR: --installer uv needs uv: pip install uv")
    if not args.no_warm_up:
        print("warm-up run (fills the package cache; not timed)", file=sys.stderr)
        one_run(args.installer)
    runs = []
    for number in range(1, args.repeat + 1):
        print(f"timed run {number}/{args.repeat}", file=sys.stderr)
        runs.append(one_run(args.installer))
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"installer {args.installer}, {args.repeat} timed run(s), median seconds; {os.cpu_count()} CPUs, "
        f"load average at the end {load}\n"
    )
    print("| step | seconds |\n|---|--:|")
    for step in runs[0]:
        print(f"| {step} | {statistics.median(run[step] for run in runs):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
