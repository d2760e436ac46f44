"""Start-up latency of the generated CLI against a bare interpreter, measured side by side in one run.

    python bench/startup.py --project ../fraud-detector [--repeat 15]

Runs `python -c pass`, `<project> --help` and `<project> history` (the console script named after the project
folder) in turn, `--repeat` times each (interleaved, so a change in the machine's load hits every command alike),
and prints the median wall time of each and its ratio to `python -c pass`. The project must be installed in its
`.venv` with bytecode (`uv sync --compile-bytecode`).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path


def timed(command: list[str], cwd: Path) -> float:
    """Wall time of one run of ``command`` in seconds (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True, help="a baked, installed project")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    project = args.project.resolve()
    python = project / ".venv" / "bin" / "python"
    cli = [str(project / ".venv" / "bin" / project.name)]  # the console script, as a learner runs it
    commands = {
        "python -c pass": [str(python), "-c", "pass"],
        "--help": [*cli, "--help"],
        "history": [*cli, "history"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, command in commands.items():
            times[name].append(timed(command, project))
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<16} {'median s':>9} {'ratio':>6}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<16} {median:>9.3f} {median / base:>6.1f}")


if __name__ == "__main__":
    main()
