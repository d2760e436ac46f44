"""Model folders are verified before use: tampering, another scikit-learn or untrusted types are refused."""

import importlib
import json
import math
import os
import shutil
import threading
import time

import numpy as np
import pytest
import sklearn
import skops.io
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.artifact import ArtifactError
from {{ cookiecutter.package_name }}.data import read_csv
from {{ cookiecutter.package_name }}.features import FEATURES

from tampering import edit_metadata, plant_exploit, replace_model, reseal, reseal_manifest

FUNCTION_TRANSFORMER = "sklearn.preprocessing._function_transformer.FunctionTransformer"


@pytest.fixture
def folder(tmp_path, model_dir):
    """A copy of the session model folder that this test may break."""
    return shutil.copytree(model_dir, tmp_path / "model")


def metadata_of(folder):
    """A model folder's metadata."""
    return json.loads((folder / artifact.METADATA_FILE).read_text())


def fitted(estimator):
    """The estimator fitted on a few rows of as many columns as FEATURES, and two classes."""
    return estimator.fit(np.eye(len(FEATURES)), np.arange(len(FEATURES)) % 2)


def test_a_saved_model_loads_and_scores_like_the_trained_one(model_dir, week0):
    model = artifact.load(model_dir)
    holdout = read_csv(week0[1])
    probabilities = model.probability(holdout.X)
    assert probabilities.shape == (len(holdout.y),)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert model.version == model_dir.name
    assert [feature.name for feature in model.features] == [f["name"] for f in model.metadata["features"]]


def test_two_threads_loading_at_once_take_turns(model_dir, monkeypatch):
    # numpy parses array headers with the ast module, whose depth count CPython 3.11 shares between threads
    active, most, real_load = [0], [0], skops.io.load

    def counting_load(*args, **kwargs):
        active[0] += 1
        most[0] = max(most[0], active[0])
        time.sleep(0.05)  # long enough for the other thread to start its load, were loads not serialised
        try:
            return real_load(*args, **kwargs)
        finally:
            active[0] -= 1

    monkeypatch.setattr(skops.io, "load", counting_load)
    threads = [threading.Thread(target=artifact.load, args=(model_dir,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert most[0] == 1


def test_every_class_of_the_fitted_build_model_is_in_the_allow_list(model_dir):
    # fails when build_model() in train.py changes: add the classes it names to TRUSTED_TYPES in artifact.py
    untrusted = artifact.types_in(model_dir / artifact.MODEL_FILE) - artifact.trusted_types()
    assert not untrusted, f"add these to TRUSTED_TYPES in artifact.py: {sorted(untrusted)}"


@pytest.mark.parametrize(
    "estimator",
    [
        HistGradientBoostingClassifier(max_iter=5),
        GradientBoostingClassifier(n_estimators=5),
        RandomForestClassifier(n_estimators=5),
        ExtraTreesClassifier(n_estimators=5),
    ],
    ids=lambda estimator: type(estimator).__name__,
)
def test_scikit_learn_tree_ensembles_load_with_no_edit_to_the_allow_list(estimator, tmp_path):
    rng = np.random.default_rng(0)
    model_file = tmp_path / artifact.MODEL_FILE
    skops.io.dump(estimator.fit(rng.random((60, 3)), [0, 1] * 30), model_file)
    assert artifact.untrusted(model_file) == []


def test_every_listed_tree_ensemble_class_exists_in_the_installed_scikit_learn():
    # the names follow scikit-learn's private modules, which a release may move
    for name in artifact.TREE_ENSEMBLES:
        module, _, attribute = name.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), attribute, None), type), name


def test_the_reviewed_code_execution_exploit_is_refused_before_it_runs_anything(folder, tmp_path, week0):
    canary = tmp_path / "pwned"
    plant_exploit(folder, canary, width=len(FEATURES))
    model_file = folder / artifact.MODEL_FILE
    # the exploit is real: trusting the scikit-learn names skops lists, as this project used to, runs the command
    naive = skops.io.load(model_file, trusted=skops.io.get_untrusted_types(file=model_file))
    with pytest.raises(ValueError):  # the classifier chokes on the command's output, after it ran
        naive.predict_proba(read_csv(week0[1]).X[:2])
    assert canary.exists()
    canary.unlink()
    with pytest.raises(ArtifactError, match=r"does not trust: .*FunctionTransformer.*check_output.*_message_with_time"):
        artifact.load(folder)
    assert not canary.exists()


def test_a_model_file_holding_a_function_from_outside_scikit_learn_is_refused(folder):
    replace_model(folder, Pipeline([("run", FunctionTransformer(os.system)), ("classify", LogisticRegression())]))
    with pytest.raises(ArtifactError, match="does not trust: .*system"):
        artifact.load(folder)


def test_no_function_is_trusted_unless_listed_not_even_a_numpy_one_skops_trusts(folder, monkeypatch):
    log = FunctionTransformer(np.log1p)
    replace_model(folder, Pipeline([("log", log), ("classify", fitted(LogisticRegression()))]))
    monkeypatch.setattr(artifact, "TRUSTED_TYPES", (*artifact.TRUSTED_TYPES, FUNCTION_TRANSFORMER))
    with pytest.raises(ArtifactError, match=r"does not trust: numpy\.log1p \("):
        artifact.load(folder)
    monkeypatch.setattr(artifact, "TRUSTED_TYPES", (*artifact.TRUSTED_TYPES, "numpy.log1p"))
    assert artifact.load(folder).version == metadata_of(folder)["version"]


def test_a_method_of_a_trusted_class_is_refused_unless_listed(folder, monkeypatch):
    scale = fitted(StandardScaler()).transform
    replace_model(folder, Pipeline([("scale", FunctionTransformer(scale)), ("classify", fitted(LogisticRegression()))]))
    monkeypatch.setattr(artifact, "TRUSTED_TYPES", (*artifact.TRUSTED_TYPES, FUNCTION_TRANSFORMER))
    with pytest.raises(
        ArtifactError, match=r"does not trust: sklearn\.preprocessing\._data\.StandardScaler\.transform "
    ):
        artifact.load(folder)


def test_a_tampered_model_file_is_refused(folder):
    with (folder / artifact.MODEL_FILE).open("ab") as file:
        file.write(b"\0")
    with pytest.raises(ArtifactError, match="sha256"):
        artifact.load(folder)


@pytest.mark.parametrize(
    ("change", "tampered"),
    [
        (lambda metadata: {"features": metadata["features"][::-1]}, artifact.METADATA_FILE),
        (lambda metadata: {"features": [{**f, "minimum": -1e200} for f in metadata["features"]]}, "metadata.json"),
        (lambda metadata: {"parameters": {"seed": 99}}, artifact.METADATA_FILE),
        (None, artifact.METRICS_FILE),
    ],
    ids=["reordered-features", "widened-range", "other-lineage", "metrics"],
)
def test_metadata_or_metrics_changed_after_training_are_refused(folder, change, tampered):
    if change:
        metadata = metadata_of(folder)
        (folder / tampered).write_text(json.dumps({**metadata, **change(metadata)}))
    else:
        metrics = json.loads((folder / tampered).read_text())
        (folder / tampered).write_text(json.dumps({**metrics, "holdout": {**metrics["holdout"], "auc": 0.99}}))
    with pytest.raises(ArtifactError, match=f"{tampered} does not match its sha256 in manifest.json"):
        artifact.verify(folder)


@pytest.mark.parametrize(
    ("features", "problem"),
    [
        (lambda fs: [*fs, fs[0]], f"duplicated: {FEATURES[0].name}"),
        (lambda fs: "abc", "non-empty list"),
        (lambda fs: [], "non-empty list"),
        (lambda fs: [["amount", "float"], *fs[1:]], "an object with a name"),
        (lambda fs: [{**fs[0], "kind": "str"}, *fs[1:]], "kind must be one of float, int, bool"),
        (lambda fs: [{**fs[0], "minimum": 5, "maximum": 1}, *fs[1:]], "minimum is above maximum"),
        (lambda fs: [{**fs[0], "minimum": "0"}, *fs[1:]], "finite numbers"),
        (lambda fs: [{**fs[0], "maximum": math.inf}, *fs[1:]], "finite numbers"),
        (lambda fs: [{**fs[0], "owner": "x"}, *fs[1:]], "unexpected keyword"),
    ],
    ids=["duplicated", "not-a-list", "empty", "not-an-object", "kind", "range", "string-bound", "infinite", "extra"],
)
def test_a_broken_feature_list_is_refused_even_with_every_hash_recomputed(folder, features, problem):
    edit_metadata(folder, features=features(metadata_of(folder)["features"]))
    with pytest.raises(ArtifactError, match=f"the feature list is broken: .*{problem}"):
        artifact.verify(folder)


def test_a_feature_list_the_estimator_was_not_fitted_on_is_refused(folder):
    edit_metadata(folder, features=metadata_of(folder)["features"][:-1])
    expected = f"expects {len(FEATURES)} features, its metadata lists {len(FEATURES) - 1}"
    with pytest.raises(ArtifactError, match=expected):
        artifact.load(folder)


def test_features_in_another_order_than_the_fitted_names_are_refused(folder):
    model = fitted(Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression())]))
    model.steps[0][1].feature_names_in_ = np.array([f.name for f in FEATURES][::-1], dtype=object)
    replace_model(folder, model)
    with pytest.raises(ArtifactError, match="was fitted on the features"):
        artifact.load(folder)


def test_a_model_of_more_than_two_classes_is_refused(folder):
    replace_model(folder, LogisticRegression().fit(np.eye(len(FEATURES)), np.arange(len(FEATURES)) % 3))
    with pytest.raises(ArtifactError, match="two-class"):
        artifact.load(folder)


def test_a_folder_without_its_manifest_is_refused(folder):
    (folder / artifact.MANIFEST_FILE).unlink()
    with pytest.raises(ArtifactError, match="cannot read .*manifest.json"):
        artifact.verify(folder)


@pytest.mark.parametrize("name", ["notes.txt", "model.skops.bak", "extra"])
def test_a_file_the_manifest_does_not_know_is_refused_by_name(folder, name):
    (folder / name).write_text("planted")
    with pytest.raises(ArtifactError, match=f"links, unknown files\\): {name}"):
        artifact.verify(folder)
    reseal(folder)  # listing it in the manifest does not help
    with pytest.raises(ArtifactError, match="only model files"):
        artifact.verify(folder)


def test_a_linked_report_is_refused_and_a_plain_one_is_accepted(folder, tmp_path):
    (tmp_path / "secret").write_text("not a report")
    (folder / "report.md").symlink_to(tmp_path / "secret")
    with pytest.raises(ArtifactError, match="report.md"):
        artifact.verify(folder)
    (folder / "report.md").unlink()
    (folder / "report.md").write_text("## AUC gate: PASSED\n")
    assert artifact.verify(folder)["version"] == metadata_of(folder)["version"]


def test_a_model_from_another_scikit_learn_minor_version_is_refused(folder):
    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    edit_metadata(folder, sklearn_version=f"{major}.{minor + 1}.0")
    with pytest.raises(artifact.LibraryMismatch, match=rf"install scikit-learn=={major}\.{minor + 1}\.0 .*retrain"):
        artifact.load(folder)


def test_a_model_from_another_scikit_learn_patch_release_is_accepted(folder, model_dir):
    major, minor = sklearn.__version__.split(".")[:2]
    edit_metadata(folder, sklearn_version=f"{major}.{minor}.99")
    assert artifact.load(folder).version == model_dir.name


def test_a_scikit_learn_version_that_is_not_a_version_is_refused(folder):
    edit_metadata(folder, sklearn_version="1.5; --index-url http://example.com")
    with pytest.raises(ArtifactError, match="is not a scikit-learn version"):
        artifact.verify(folder)


def test_an_object_without_predict_proba_is_refused(folder):
    replace_model(folder, StandardScaler().fit(np.eye(3)))
    with pytest.raises(ArtifactError, match="StandardScaler, which has no predict_proba"):
        artifact.load(folder)


def test_a_model_file_that_is_not_skops_is_refused(folder):
    (folder / artifact.MODEL_FILE).write_bytes(b"not a zip file")
    reseal(folder)
    with pytest.raises(ArtifactError, match="cannot load"):
        artifact.load(folder)


def test_a_folder_without_its_model_file_is_refused(folder):
    (folder / artifact.MODEL_FILE).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        artifact.verify(folder)


@pytest.mark.parametrize("content", ["", "{broken", "[1, 2]"], ids=["empty", "broken", "not-an-object"])
def test_unreadable_metadata_is_refused(folder, content):
    (folder / artifact.METADATA_FILE).write_text(content)
    reseal_manifest(folder)
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
