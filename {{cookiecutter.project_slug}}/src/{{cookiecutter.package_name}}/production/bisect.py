"""`bisect GOOD BAD`: `git bisect run` with one retrain a step, judged by the gate's own rule against GOOD's model."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..config import GateSettings
from ..data import read_csv
from ..gate import auc_estimate, compare_aucs, decide
from .reproduce import ReproduceError, commit_of, environment, git, scores, train_at, worktree

SKIP, GOOD, BAD = 125, 0, 1  # the exit codes `git bisect run` reads


def train_and_score(tree: Path, train_csv: Path, holdout_csv: Path, seed: int) -> np.ndarray:
    """Train with a tree's code in its locked environment (this Python's version); return the holdout scores."""
    python = environment(tree, platform.python_version())
    return scores(python, train_at(tree, python, train_csv, holdout_csv, seed), holdout_csv)


def model_scores(commit: str, train_csv: Path, holdout_csv: Path, seed: int) -> np.ndarray:
    """Train at a commit in a worktree of its own; return the model's holdout probabilities."""
    with worktree(commit) as tree:
        return train_and_score(tree, train_csv, holdout_csv, seed)


def judge(y: np.ndarray, candidate: np.ndarray, good: np.ndarray, gate: GateSettings) -> tuple[str, str]:
    """The gate's own rule, GOOD's model as production: ('good' or 'bad', the numbers that decided)."""
    comparison = compare_aucs(y, candidate, good, gate.confidence)
    decision, _ = decide(comparison.candidate, comparison, gate)
    numbers = f"AUC {comparison.candidate.auc:.4f}  lower bound {comparison.lower_bound:+.4f}"
    return ("good" if decision == "pass" else "bad"), numbers


def bisect(good: str, bad: str, train_csv: Path, holdout_csv: Path, seed: int, gate: GateSettings, say=print) -> str:
    """Find the first commit after GOOD whose model the gate blocks against GOOD's; return its id."""
    if git("status", "--porcelain", "--untracked-files=no"):
        raise ReproduceError("the work tree has uncommitted changes: commit or stash them first")
    good, bad = commit_of(good), commit_of(bad)
    ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", good, bad], capture_output=True)
    if good == bad or ancestor.returncode:
        raise ReproduceError(f"GOOD {good[:12]} is not an earlier commit (an ancestor) of BAD {bad[:12]}")
    y = read_csv(holdout_csv).y
    reference = model_scores(good, train_csv, holdout_csv, seed)
    say(f"{good[:12]}  AUC {auc_estimate(y, reference).auc:.4f}  GOOD")
    with tempfile.TemporaryDirectory(prefix="bisect-") as scratch:
        np.save(Path(scratch) / "good.npy", reference)
        step = [sys.executable, "-m", f"{__package__}.bisect", str(Path(scratch) / "good.npy")]
        step += [str(train_csv.resolve()), str(holdout_csv.resolve()), str(seed), json.dumps(asdict(gate))]
        guilty, tested = _bisect_run(good, bad, step, say)
    if guilty == bad and bad not in tested:  # every tested commit was good: BAD itself was never trained
        verdict, numbers = judge(y, model_scores(bad, train_csv, holdout_csv, seed), reference, gate)
        say(f"{bad[:12]}  {numbers}  {verdict}")
        if verdict == "good":
            raise ReproduceError(f"no commit in {good[:12]}..{bad[:12]} fails the gate against GOOD's model")
    say(f"first bad commit: {git('show', '--no-patch', '--format=%h %s', guilty)}")
    say(git("show", "--stat", "--format=", guilty))
    return guilty


def _bisect_run(good: str, bad: str, step: list[str], say) -> tuple[str, set[str]]:
    """`git bisect run` of ``step`` in a worktree at BAD; return the first bad commit and the commits trained."""
    tested, skipped, output = set(), [], []
    with worktree(bad) as tree:
        try:
            # with one commit to test, `git bisect start` already names it and there is nothing to run
            output = git("bisect", "start", bad, good, cwd=tree).splitlines(keepends=True)
            if not _first_bad(output):
                command = ["git", "bisect", "run", *step]
                run = subprocess.Popen(command, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for line in run.stdout:
                    output.append(line)
                    if line.startswith("step "):
                        commit, text = line.removeprefix("step ").rstrip().split(" ", 1)
                        if text.startswith("skipped"):
                            skipped.append(text)
                        else:
                            tested.add(commit)
                        say(f"{commit[:12]}  {text}")
                run.wait()
        finally:
            subprocess.run(["git", "bisect", "reset", "--quiet"], cwd=tree, capture_output=True)
    found = _first_bad(output)
    if not found and skipped and not tested:
        raise ReproduceError(f"no commit after GOOD could be trained; the first one {skipped[0]}")
    if not found:
        raise ReproduceError(f"git bisect found no first bad commit: {output[-1].strip() if output else 'no output'}")
    return commit_of(found[0]), tested


def _first_bad(output: list[str]) -> list[str]:
    """The commit git bisect names in its output as the first bad one (an empty list before it does)."""
    return [line.split()[0] for line in output if line.rstrip().endswith("is the first bad commit")]


def bisect_step(argv: list[str]) -> int:
    """The `git bisect run` command: train the checked-out commit, then good (0), bad (1) or skip (125)."""
    good_scores, train_csv, holdout_csv, seed, gate = argv
    tree = Path(git("rev-parse", "--show-toplevel"))
    commit = git("rev-parse", "HEAD")
    try:
        candidate = train_and_score(tree, Path(train_csv), Path(holdout_csv), int(seed))
    except ReproduceError as error:
        print(f"step {commit} skipped: {error}", flush=True)
        return SKIP
    y = read_csv(Path(holdout_csv)).y
    verdict, numbers = judge(y, candidate, np.load(good_scores), GateSettings(**json.loads(gate)))
    print(f"step {commit} {numbers}  {verdict}", flush=True)
    return GOOD if verdict == "good" else BAD


if __name__ == "__main__":
    try:
        sys.exit(bisect_step(sys.argv[1:]))
    except Exception as error:  # anything unexpected stops the bisection: git bisect run aborts above 127
        print(f"bisect step failed: {error!r}", flush=True)
        sys.exit(255)
