"""Model folders are verified before use: tampering, another scikit-learn or foreign types are refused."""

import json
import os
import shutil

import numpy as np
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.artifact import ArtifactError
from {{ cookiecutter.package_name }}.data import read_csv, sha256_of


@pytest.fixture
def folder(tmp_path, model_dir):
    """A copy of the session model folder that this test may break."""
    return shutil.copytree(model_dir, tmp_path / "model")


def edit_metadata(folder, **changes):
    """Rewrite some metadata fields."""
    path = folder / artifact.METADATA_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def replace_model(folder, estimator):
    """Swap in another estimator and update the recorded sha256, as a careful attacker would."""
    skops.io.dump(estimator, folder / artifact.MODEL_FILE)
    edit_metadata(folder, model_sha256=sha256_of(folder / artifact.MODEL_FILE))


def test_a_saved_model_loads_and_scores_like_the_trained_one(model_dir, week0):
    model = artifact.load(model_dir)
    holdout = read_csv(week0[1])
    probabilities = model.probability(holdout.X)
    assert probabilities.shape == (len(holdout.y),)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert model.version == model_dir.name
    assert [feature.name for feature in model.features] == [f["name"] for f in model.metadata["features"]]


def test_a_tampered_model_file_is_refused(folder):
    with (folder / artifact.MODEL_FILE).open("ab") as file:
        file.write(b"\0")
    with pytest.raises(ArtifactError, match="sha256"):
        artifact.load(folder)


def test_a_model_from_another_scikit_learn_minor_version_is_refused(folder):
    major, minor = (int(part) for part in artifact.sklearn.__version__.split(".")[:2])
    edit_metadata(folder, sklearn_version=f"{major}.{minor + 1}.0")
    with pytest.raises(artifact.LibraryMismatch, match=rf"install scikit-learn=={major}\.{minor + 1}\.0 .*retrain"):
        artifact.load(folder)


def test_a_model_from_another_scikit_learn_patch_release_is_accepted(folder, model_dir):
    major, minor = artifact.sklearn.__version__.split(".")[:2]
    edit_metadata(folder, sklearn_version=f"{major}.{minor}.99")
    assert artifact.load(folder).version == model_dir.name


def test_a_model_file_holding_a_non_scikit_learn_type_is_refused(folder):
    # loading this would hand os.system to the service: skops lists it as untrusted
    replace_model(folder, Pipeline([("run", FunctionTransformer(os.system)), ("classify", LogisticRegression())]))
    with pytest.raises(ArtifactError, match="types outside scikit-learn: .*system"):
        artifact.load(folder)


def test_an_object_without_predict_proba_is_refused(folder):
    replace_model(folder, StandardScaler().fit(np.eye(3)))
    with pytest.raises(ArtifactError, match="StandardScaler, which has no predict_proba"):
        artifact.load(folder)


def test_a_model_file_that_is_not_skops_is_refused(folder):
    (folder / artifact.MODEL_FILE).write_bytes(b"not a zip file")
    edit_metadata(folder, model_sha256=sha256_of(folder / artifact.MODEL_FILE))
    with pytest.raises(ArtifactError, match="cannot load"):
        artifact.load(folder)


def test_a_folder_without_its_model_file_is_refused(folder):
    (folder / artifact.MODEL_FILE).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        artifact.verify(folder)


@pytest.mark.parametrize("content", ["", "{broken", "[1, 2]"], ids=["empty", "broken", "not-an-object"])
def test_unreadable_metadata_is_refused(folder, content):
    (folder / artifact.METADATA_FILE).write_text(content)
    with pytest.raises(ArtifactError, match=artifact.METADATA_FILE):
        artifact.verify(folder)


def test_a_missing_folder_is_an_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match="cannot read"):
        artifact.load(tmp_path / "nowhere")


def test_git_state_is_none_outside_a_git_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for variable in ("GIT_DIR", "GIT_WORK_TREE"):  # set when run from a git hook
        monkeypatch.delenv(variable, raising=False)
    assert artifact.git_state() == {"git_commit": None, "git_dirty": None}
