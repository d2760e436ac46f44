"""reproduce and bisect: the refusals and the verdicts that need no rebuild (the template's tests run rebuilds)."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.cli import PROG, main
from {{ cookiecutter.package_name }}.data import sha256_of
from {{ cookiecutter.package_name }}.production.reproduce import ReproduceError, differences, find_data, reproduce


@pytest.fixture
def model_copy(tmp_path, model_dir):
    """A copy of the session model whose metadata a test may change."""
    return shutil.copytree(model_dir, tmp_path / "model")


def with_metadata(folder, **changes):
    """Change fields of a model folder's metadata.json."""
    path = folder / "metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return folder


def test_a_model_trained_from_uncommitted_code_is_refused(model_copy, tmp_path):
    with pytest.raises(ReproduceError, match="trained from uncommitted code"):
        reproduce(with_metadata(model_copy, git_commit="0" * 40, git_dirty=True), tmp_path)


def test_a_model_trained_outside_git_is_refused(model_copy, tmp_path):
    with pytest.raises(ReproduceError, match="trained from uncommitted code"):
        reproduce(with_metadata(model_copy, git_commit=None, git_dirty=None), tmp_path)


def test_a_model_that_records_no_lock_is_refused(model_copy, tmp_path):
    with pytest.raises(ReproduceError, match="records no uv.lock"):
        reproduce(with_metadata(model_copy, git_commit="0" * 40, git_dirty=False, lock_sha256=None), tmp_path)


def test_data_is_found_by_its_sha256_when_it_moved_under_the_data_folder(tmp_path, week0):
    moved = tmp_path / "data" / "elsewhere" / "renamed.csv"
    moved.parent.mkdir(parents=True)
    shutil.copy(week0[0], moved)
    record = {"path": str(tmp_path / "gone.csv"), "sha256": sha256_of(week0[0])}
    assert find_data(record, tmp_path / "data") == moved


def test_missing_data_and_changed_data_are_one_line_each(tmp_path, week0):
    changed = tmp_path / "train.csv"
    changed.write_text(week0[0].read_text() + "1,2,0.1,3,1,4,0\n")
    record = {"path": str(changed), "sha256": sha256_of(week0[0])}
    with pytest.raises(ReproduceError, match=r"train.csv has changed and no file under .*data/ has") as error:
        find_data(record, tmp_path / "data")
    assert "\n" not in str(error.value)
    with pytest.raises(ReproduceError, match="gone.csv is missing"):
        find_data({**record, "path": str(tmp_path / "gone.csv")}, tmp_path / "data")


def test_identical_predictions_are_reported_as_identical_and_others_by_row_and_size():
    scores = np.array([0.1, 0.2, 0.3, 0.4])
    assert differences(scores, scores.copy()) == "identical: all 4 holdout predictions match bit for bit"
    changed = scores.copy()
    changed[[1, 3]] += [1e-12, 0.25]
    verdict = differences(scores, changed)
    assert verdict.startswith("different: 2 of 4 holdout predictions differ, rows 1, 3; the largest by 0.25 (row 3")


@pytest.fixture
def repository(tmp_path, monkeypatch, week0):
    """A git repository of three commits as the working directory."""
    monkeypatch.chdir(tmp_path)
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", "init", "--quiet"], check=True)
    for number in range(3):
        (tmp_path / "notes.txt").write_text(f"{number}\n")
        subprocess.run(["git", "add", "notes.txt"], check=True)
        subprocess.run(["git", *identity, "commit", "--quiet", "-m", f"commit {number}"], check=True)
    return tmp_path


def bisect(capsys, *args, week0):
    """Run `bisect` in-process with the session's data; return (exit code, stderr)."""
    code = main(["bisect", *args, "--train", str(week0[0]), "--holdout", str(week0[1])])
    return code, capsys.readouterr().err


def test_bisect_refuses_a_dirty_work_tree_in_one_line(repository, capsys, week0):
    (repository / "notes.txt").write_text("changed\n")
    code, err = bisect(capsys, "HEAD~2", "HEAD", week0=week0)
    assert (code, err) == (1, f"{PROG}: error: the work tree has uncommitted changes: commit or stash them first\n")


def test_bisect_refuses_a_good_commit_that_is_not_an_ancestor_of_the_bad_one(repository, capsys, week0):
    code, err = bisect(capsys, "HEAD", "HEAD~2", week0=week0)
    assert code == 1 and "is not an earlier commit (an ancestor) of BAD" in err and err.count("\n") == 1


def test_bisect_refuses_a_name_that_is_no_commit(repository, capsys, week0):
    code, err = bisect(capsys, "no-such-branch", week0=week0)
    assert (code, err) == (1, f"{PROG}: error: 'no-such-branch' is not a commit of this repository\n")
