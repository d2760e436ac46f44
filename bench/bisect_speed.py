"""How long `bisect` takes to name the commit that cost AUC, in a history of 16 commits with one subtle bug.

Usage (from the template repository, with cookiecutter and uv installed):

    python bench/bisect_speed.py                  # bake, install, build the history, bisect once (cold cache)
    python bench/bisect_speed.py --warm           # then bisect again, the locked environment already built

It bakes the default project, installs it from its uv.lock, then commits 16 changes on top of the first commit:
15 harmless ones (notes) and, at position 11, the subtle bug (amounts multiplied by 100 at training time only:
about 1.5 AUC points on week 0's holdout). `bisect HEAD~16 HEAD` must name that commit; the script prints the
number of retrains (GOOD's model plus one per step), every step, and the seconds. tests/test_reproduce.py builds
the same history with make_history().
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent
BUG_BEFORE = "    return build_model(seed).fit(data.X, data.y)\n"
BUG_AFTER = (
    "    X = data.X.copy()\n"
    "    X[:, 0] *= 100  # amounts in cents, as the new ledger gives them\n"
    "    return build_model(seed).fit(X, data.y)\n"
)
BUG_MESSAGE = "Train on amounts in cents"
IDENTITY = ["-c", "user.name=Bench", "-c", "user.email=bench@example.com"]


def make_history(project: Path, commits: int = 16, bug_at: int = 11) -> str:
    """Commit ``commits`` changes, the subtle bug as number ``bug_at``; return the bug's commit id."""
    bug = ""
    for number in range(1, commits + 1):
        if number == bug_at:
            train_py = next(project.glob("src/*/train.py"))
            source = train_py.read_text()
            assert BUG_BEFORE in source, "the bug's anchor line moved: update BUG_BEFORE"
            train_py.write_text(source.replace(BUG_BEFORE, BUG_AFTER))
            message = BUG_MESSAGE
        else:
            notes = project / "NOTES.md"
            notes.write_text((notes.read_text() if notes.is_file() else "") + f"Note {number}.\n")
            message = f"Add note {number}"
        subprocess.run(["git", "add", "--all"], cwd=project, check=True)
        subprocess.run(["git", *IDENTITY, "commit", "--quiet", "-m", message], cwd=project, check=True)
        if number == bug_at:
            bug = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout
    return bug.strip()


def uv() -> str:
    """The uv executable next to this interpreter or on PATH."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if found is None:
        raise SystemExit("ERROR: this benchmark needs uv: pip install uv")
    return found


def bisect(project: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run `bisect HEAD~16 HEAD`; return its seconds and output."""
    started = time.monotonic()
    done = subprocess.run(
        [str(project / ".venv" / "bin" / project.name), "bisect", "HEAD~16", "HEAD"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    seconds = time.monotonic() - started
    if done.returncode:
        raise SystemExit(f"ERROR: bisect exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return seconds, done.stdout


def main(argv: list[str] | None = None) -> int:
    """Bake, build the history, time the bisection(s), print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", action="store_true", help="bisect a second time with the environment built")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-bisect-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MODEL_REGISTRY")}
        env.update(XDG_CACHE_HOME=str(work / "cache"), PATH=f"{Path(uv()).parent}{os.pathsep}{env['PATH']}")
        subprocess.run([sys.executable, "-m", "cookiecutter", "--no-input", TEMPLATE, "-o", work], check=True, env=env)
        (project,) = [path for path in work.iterdir() if path.is_dir() and path.name != "cache"]
        sync = [uv(), "sync", "--locked", "--quiet", "--compile-bytecode"]
        subprocess.run(sync, cwd=project, check=True, env=env)
        bug = make_history(project)
        runs = [bisect(project, env)]
        if args.warm:
            runs.append(bisect(project, env))
        for name, (seconds, output) in zip(("cold", "warm"), runs, strict=False):
            retrains = len(re.findall(r"AUC \d", output))
            found = bug[:7] in output.split("first bad commit:")[1]
            print(f"--- {name} cache: {seconds:.1f} s, {retrains} retrains, bug found: {found}")
            print(output.rstrip())
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        print(f"\n{os.cpu_count()} CPUs, load average at the end {load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
