"""Rebuild a model at its commit, in a git worktree with that commit's locked environment: `reproduce`."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .. import artifact
from ..data import sha256_of

PACKAGE = __package__.rpartition(".")[0]  # the project's package, whose command trains (this layer sits in it)

LOCK = "uv.lock"
# scores a model folder with nothing but numpy and skops, so a model of any commit can be scored in that commit's
# environment whatever its modules look like; like artifact.load, it trusts scikit-learn's own types only
SCORE = """
import csv, json, sys
import numpy as np, skops.io
folder, holdout, out = sys.argv[1:4]
names = [feature["name"] for feature in json.load(open(f"{folder}/metadata.json"))["features"]]
with open(holdout, newline="", encoding="utf-8-sig") as file:
    header, *rows = [row for row in csv.reader(file) if row]
X = np.array([[float(row[header.index(name)]) for name in names] for row in rows])
untrusted = skops.io.get_untrusted_types(file=f"{folder}/model.skops")
if any(not name.startswith("sklearn.") for name in untrusted):
    sys.exit(f"{folder} holds types outside scikit-learn")
np.save(out, skops.io.load(f"{folder}/model.skops", trusted=untrusted).predict_proba(X)[:, 1])
"""


class ReproduceError(ValueError):
    """A model or a range of commits cannot be rebuilt; the message is the one line to print."""


def git(*args: str, cwd: Path | None = None) -> str:
    """Run git; return its output, or raise ReproduceError with git's last line."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
        raise ReproduceError(f"git {args[0]}: {lines[-1]}")
    return done.stdout.strip()


def commit_of(name: str) -> str:
    """The full commit id a name (sha, branch, tag, HEAD~3) stands for."""
    try:
        return git("rev-parse", "--verify", "--quiet", name + "^{commit}")
    except ReproduceError:
        raise ReproduceError(f"{name!r} is not a commit of this repository") from None


@contextlib.contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """A detached git worktree at ``commit`` in a temporary folder, removed afterwards whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix="worktree-")) / "tree"
    git("worktree", "add", "--quiet", "--detach", str(folder), commit)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], capture_output=True)
        shutil.rmtree(folder.parent, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], capture_output=True)


def environments() -> Path:
    """Where locked environments are kept, one per lock and Python: shared by every commit with that lock."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / PACKAGE / "environments"


def uv() -> list[str]:
    """The uv command: on PATH, else the uv package of this interpreter (the project's test extra installs it)."""
    if found := shutil.which("uv"):
        return [found]
    if importlib.util.find_spec("uv"):
        return [sys.executable, "-m", "uv"]
    raise ReproduceError(
        "reproduce and bisect build environments with uv: install the project with its test extra "
        "(uv sync --locked --extra test), or put uv on PATH"
    )


def environment(tree: Path, version: str) -> Path:
    """The Python of an environment holding ``tree``'s locked dependencies (the project itself runs from the tree)."""
    lock = tree / LOCK
    if not lock.is_file():
        raise ReproduceError(f"this commit has no {LOCK}")
    target = environments() / f"{sha256_of(lock)[:16]}-py{version}"
    # this interpreter when it is the wanted version, so uv needs to find (or fetch) no other
    python = sys.executable if platform.python_version() == version else version
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env["UV_PROJECT_ENVIRONMENT"] = str(target)
    sync = [*uv(), "sync", "--locked", "--no-install-project", "--compile-bytecode", "--quiet", "--python", python]
    done = subprocess.run(sync, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        raise ReproduceError(f"uv sync --locked failed: {lines[0].removeprefix('error: ')}")
    return target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def train_at(tree: Path, python: Path, train_csv: Path, holdout_csv: Path, seed: int) -> Path:
    """Train with the tree's own code and command in its environment; return the new model folder."""
    command = [str(python), "-m", f"{PACKAGE}.cli", "train", "--seed", str(seed)]  # every commit's cli.py runs so
    command += ["--train", str(train_csv.resolve()), "--holdout", str(holdout_csv.resolve())]
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        raise ReproduceError(f"training failed: {lines[-1]}")
    return tree / done.stdout.split()[1]


def scores(python: Path, folder: Path, holdout_csv: Path) -> np.ndarray:
    """A model folder's holdout probabilities, computed in the environment of ``python``."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "scores.npy"
        done = subprocess.run(
            [str(python), "-c", SCORE, str(folder.resolve()), str(holdout_csv.resolve()), str(out)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
            raise ReproduceError(f"cannot score {folder.name}: {lines[-1]}")
        return np.load(out)


def find_data(record: dict, data_dir: Path) -> Path:
    """The file with a recorded sha256: at its recorded path, else anywhere under ``data_dir``."""
    recorded, wanted = Path(record["path"]), record["sha256"]
    if recorded.is_file() and sha256_of(recorded) == wanted:
        return recorded
    for candidate in sorted(data_dir.rglob("*")) if data_dir.is_dir() else []:
        if candidate.is_file() and sha256_of(candidate) == wanted:
            return candidate
    state = "has changed" if recorded.is_file() else "is missing"
    raise ReproduceError(f"{recorded} {state} and no file under {data_dir}/ has its recorded sha256 {wanted[:12]}")


def differences(recorded: np.ndarray, rebuilt: np.ndarray) -> str:
    """'identical' when every prediction matches bit for bit, else which differ and by how much."""
    if recorded.shape != rebuilt.shape:
        return f"different: {len(recorded)} recorded predictions, {len(rebuilt)} rebuilt"
    if np.array_equal(recorded, rebuilt):
        return f"identical: all {len(recorded)} holdout predictions match bit for bit"
    rows = np.flatnonzero(recorded != rebuilt)
    worst = rows[np.argmax(np.abs(recorded[rows] - rebuilt[rows]))]
    return (
        f"different: {len(rows)} of {len(recorded)} holdout predictions differ, rows {', '.join(map(str, rows[:5]))}"
        f"{' ...' if len(rows) > 5 else ''}; the largest by {abs(recorded[worst] - rebuilt[worst]):.3g} "
        f"(row {worst}: {recorded[worst]!r} recorded, {rebuilt[worst]!r} rebuilt)"
    )


def reproduce(folder: Path, data_dir: Path, say: Callable[[str], None] = print) -> bool:
    """Retrain a model at its recorded commit, lock, data and seed; say how its predictions compare."""
    metadata = artifact.read_json(folder / artifact.METADATA_FILE)
    version, commit = metadata.get("version"), metadata.get("git_commit")
    if not commit or metadata.get("git_dirty") is not False:
        raise ReproduceError(f"{version} was trained from uncommitted code (git_dirty), so no commit can rebuild it")
    if not metadata.get("lock_sha256"):
        raise ReproduceError(f"{version} records no {LOCK} (lock_sha256), so its environment is unknown")
    train_csv = find_data(metadata["train_data"], data_dir)
    holdout_csv = find_data(metadata["holdout_data"], data_dir)
    commit = commit_of(commit)
    with worktree(commit) as tree:
        if not (tree / LOCK).is_file() or sha256_of(tree / LOCK) != metadata["lock_sha256"]:
            raise ReproduceError(f"{LOCK} of commit {commit[:12]} is not the one {version} records")
        say(f"commit {commit[:12]}, {LOCK} {metadata['lock_sha256'][:12]}, Python {metadata['python_version']}")
        python = environment(tree, metadata["python_version"])
        say(f"data {train_csv} and {holdout_csv}, seed {metadata['parameters']['seed']}")
        rebuilt = train_at(tree, python, train_csv, holdout_csv, metadata["parameters"]["seed"])
        verdict = differences(scores(python, folder, holdout_csv), scores(python, rebuilt, holdout_csv))
    say(verdict)
    return verdict.startswith("identical")
