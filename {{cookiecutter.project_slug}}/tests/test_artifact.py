"""Model folders are verified before use: tampering, links, another scikit-learn or untrusted types are refused."""

import functools
import json
import math
import os
import re
import shutil
import threading
import time

import numpy as np
import pytest
import scipy.sparse
import sklearn
import skops.io
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from {{ cookiecutter.package_name }} import artifact, train
from {{ cookiecutter.package_name }}.artifact import ArtifactError, LibraryMismatch
from {{ cookiecutter.package_name }}.data import read_csv
from {{ cookiecutter.package_name }}.features import FEATURES

from tampering import (
    append_byte,
    edit_metadata,
    edit_schema,
    link_outside,
    plant_exploit,
    replace_model,
    reseal,
    rewrite,
)

FUNCTION_TRANSFORMER = "sklearn.preprocessing._function_transformer.FunctionTransformer"
MAJOR, MINOR = (int(part) for part in sklearn.__version__.split(".")[:2])


@pytest.fixture
def folder(tmp_path, model_dir):
    """A copy of the session model folder that this test may break."""
    return shutil.copytree(model_dir, tmp_path / "model")


def metadata_of(folder):
    """A model folder's metadata."""
    return json.loads((folder / artifact.METADATA_FILE).read_text())


def fitted(estimator, classes=2):
    """The estimator fitted on a few rows of as many columns as FEATURES, and ``classes`` classes."""
    return estimator.fit(np.eye(len(FEATURES)), np.arange(len(FEATURES)) % classes)


def model_after(name, step):
    """A pipeline that runs ``step`` before the project's own fitted model (build_model())."""
    return Pipeline([(name, step), ("classify", fitted(train.build_model()))])


@pytest.mark.parametrize(
    "change",
    [
        lambda folder: None,
        lambda folder: edit_metadata(folder, sklearn_version=f"{MAJOR}.{MINOR}.99"),
        lambda folder: (folder / "report.md").write_text("## AUC gate: PASSED\n"),
    ],
    ids=["as-saved", "from-another-patch-release", "beside-a-plain-gate-report"],
)
def test_a_saved_model_loads_and_scores_like_the_trained_one(folder, model_dir, week0, change):
    change(folder)
    model = artifact.load(folder)
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


@pytest.fixture
def estimator_swap(monkeypatch):
    """Make build_model() return another estimator, as a user who changes train.py does (the allow-list follows)."""

    def swap(make) -> None:
        monkeypatch.setattr(train, "build_model", lambda seed=0: make())
        artifact.trusted_nodes.cache_clear()

    yield swap
    artifact.trusted_nodes.cache_clear()


def test_a_model_fitted_on_the_whole_data_holds_nothing_that_a_fit_on_a_few_rows_does_not(model_dir):
    # the allow-list is what build_model() holds when fitted on a few rows: the real model must hold no more
    untrusted = artifact.untrusted(model_dir / artifact.MODEL_FILE)
    assert not untrusted, f"list these in TRUSTED_TYPES in artifact.py: {untrusted}"


ENSEMBLES = {
    "hist-gradient-boosting": lambda: HistGradientBoostingClassifier(max_iter=5),
    "gradient-boosting": lambda: GradientBoostingClassifier(n_estimators=5),
    "random-forest": lambda: RandomForestClassifier(n_estimators=5),
    "extra-trees": lambda: ExtraTreesClassifier(n_estimators=5),
}


@pytest.mark.parametrize("make", ENSEMBLES.values(), ids=ENSEMBLES)
def test_a_tree_ensemble_loads_once_build_model_builds_it_and_not_before(tmp_path, estimator_swap, make):
    model_file = tmp_path / "model.skops"
    skops.io.dump(fitted(make()), model_file)
    if type(make()).__name__ not in repr(train.build_model()):  # a project on logistic regression trusts no tree
        assert re.search(r"sklearn\.\S+ \((ObjectNode|TreeNode)\)", ", ".join(artifact.untrusted(model_file)))
    estimator_swap(make)
    assert artifact.untrusted(model_file) == []


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


def decoy(folder, attribute, value, loader, name):
    """Give the model an attribute that ``loader`` builds, named ``name`` in the schema: a name that loader ignores."""
    model_file = folder / artifact.MODEL_FILE
    estimator = skops.io.load(model_file, trusted=skops.io.get_untrusted_types(file=model_file))
    setattr(estimator, attribute, value)
    replace_model(folder, estimator)
    module, _, cls = name.rpartition(".")

    def rename(schema: bytes) -> bytes:
        def visit(node):
            if isinstance(node, dict):
                if node.get("__loader__") == loader:
                    node.update({"__module__": module, "__class__": cls})
                for value in node.values():
                    visit(value)
            elif isinstance(node, list):
                for value in node:
                    visit(value)

        tree = json.loads(schema)
        visit(tree)
        return json.dumps(tree).encode()

    edit_schema(folder, rename)


@pytest.mark.parametrize(
    ("attribute", "value", "loader", "name"),
    [
        ("predict_proba", functools.partial(np.add, 1.0), "PartialNode", "builtins.dict"),
        ("coef_", np.ma.masked_array([1.0, 2.0], mask=[0, 1]), "MaskedArrayNode", "numpy.ndarray"),
        ("coef_", scipy.sparse.csr_matrix(np.eye(2)), "SparseMatrixNode", "numpy.ndarray"),
        ("note", bytearray(b"x"), "BytearrayNode", "builtins.bytes"),
    ],
    ids=["partial-named-dict", "masked-array-named-ndarray", "sparse-matrix-named-ndarray", "bytearray-named-bytes"],
)
def test_a_loader_that_builds_its_own_type_whatever_the_name_says_is_refused(folder, attribute, value, loader, name):
    # each of these skops loaders builds a fixed type: a decoy name passed an allow-list of names, never this one
    decoy(folder, attribute, value, loader, name)
    with pytest.raises(ArtifactError, match=rf"does not trust: .*{re.escape(name)} \({loader}\)"):
        artifact.load(folder)


def forged(make, point):
    """A fitted tree ensemble one of whose nodes ``point`` sends outside the tree ("child") or the row ("feature")."""
    X = np.random.default_rng(0).random((200, len(FEATURES)))
    model = make().fit(X, (X[:, 0] > 0.5).astype(int))
    if isinstance(model, HistGradientBoostingClassifier):
        nodes = model._predictors[0][0].nodes
        root = int(np.flatnonzero(~nodes["is_leaf"].astype(bool))[0])
        nodes["left" if point == "child" else "feature_idx"][root] = 10**6
        return model
    tree = model.estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child" if point == "child" else "feature"][0] = 10**6
    tree.__setstate__({**state, "nodes": nodes})
    return model


@pytest.mark.parametrize("point", ["child", "feature"])
@pytest.mark.parametrize("name", ["hist-gradient-boosting", "random-forest"])
def test_a_tree_whose_nodes_point_outside_it_is_refused_before_it_scores(folder, estimator_swap, name, point):
    # scikit-learn follows a tree's node indices without bounds checks: scoring such a file crashes the process
    estimator_swap(ENSEMBLES[name])
    replace_model(folder, forged(ENSEMBLES[name], point))
    with pytest.raises(ArtifactError, match="holds a tree whose nodes point outside the tree or the row"):
        artifact.load(folder)


def test_an_estimator_without_predict_proba_is_refused_even_one_build_model_builds(folder, estimator_swap):
    estimator_swap(StandardScaler)
    replace_model(folder, StandardScaler().fit(np.eye(len(FEATURES))))
    with pytest.raises(ArtifactError, match="StandardScaler, which has no predict_proba"):
        artifact.load(folder)


@pytest.mark.parametrize(
    ("model", "also_trusted", "refusal"),
    [
        (lambda: model_after("run", FunctionTransformer(os.system)), (), "does not trust: .*system"),
        (
            lambda: model_after("log", FunctionTransformer(np.log1p)),
            (FUNCTION_TRANSFORMER,),
            r"does not trust: .*numpy\.log1p \(",
        ),
        (
            lambda: model_after("scale", FunctionTransformer(fitted(StandardScaler()).transform)),
            (FUNCTION_TRANSFORMER,),
            r"does not trust: .*sklearn\.preprocessing\._data\.StandardScaler\.transform \(",
        ),
        (lambda: model_after("log", FunctionTransformer(np.log1p)), (FUNCTION_TRANSFORMER, "numpy.log1p"), None),
    ],
    ids=["os-function", "numpy-function-skops-trusts", "method-of-a-trusted-class", "listed-function-loads"],
)
def test_no_function_is_trusted_unless_listed_not_even_a_numpy_one_skops_trusts(
    folder, monkeypatch, model, also_trusted, refusal
):
    replace_model(folder, model())
    monkeypatch.setattr(artifact, "TRUSTED_TYPES", (*artifact.TRUSTED_TYPES, *also_trusted))
    if refusal is None:
        assert artifact.load(folder).version == metadata_of(folder)["version"]
    else:
        with pytest.raises(ArtifactError, match=refusal):
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


def unnamed_first_object(schema):
    """A skops schema whose first object has no class name."""
    return re.sub(rb'"__class__": "\w+"', b'"__class__": null', schema, count=1)


def fitted_on_reversed_names():
    """The project's model recorded as fitted on the features in reverse order."""
    model = fitted(train.build_model())
    first = model.steps[0][1] if isinstance(model, Pipeline) else model
    first.feature_names_in_ = np.array([f.name for f in FEATURES][::-1], dtype=object)
    return model


@pytest.mark.parametrize(
    ("tamper", "refusal"),
    [
        (
            lambda folder: edit_metadata(folder, features=metadata_of(folder)["features"][:-1]),
            f"expects {len(FEATURES)} features, its metadata lists {len(FEATURES) - 1}",
        ),
        (lambda folder: replace_model(folder, fitted_on_reversed_names()), "was fitted on the features"),
    ],
    ids=["fewer-features", "another-order"],
)
def test_a_feature_list_the_estimator_was_not_fitted_on_is_refused(folder, tamper, refusal):
    tamper(folder)
    with pytest.raises(ArtifactError, match=refusal):
        artifact.load(folder)


@pytest.mark.parametrize(
    ("tamper", "error", "refusal"),
    [
        (lambda f: shutil.rmtree(f), ArtifactError, "cannot read"),
        (lambda f: (f / artifact.MANIFEST_FILE).unlink(), ArtifactError, "cannot read .*manifest.json"),
        (lambda f: link_outside(f, artifact.MANIFEST_FILE), ArtifactError, "manifest.json is a symbolic link"),
        (
            lambda f: (f / artifact.MANIFEST_FILE).write_text('{"files": ["model.skops"]}'),
            ArtifactError,
            "manifest.json does not map file names to sha256",
        ),
        (lambda f: (f / artifact.MODEL_FILE).unlink(), ArtifactError, "model.skops is missing"),
        (lambda f: link_outside(f, artifact.MODEL_FILE), ArtifactError, "model.skops is missing or not a regular"),
        (lambda f: append_byte(f / artifact.MODEL_FILE), ArtifactError, "model.skops does not match its sha256"),
        (lambda f: rewrite(f, artifact.MODEL_FILE, "not a zip file"), ArtifactError, "cannot load .*model.skops"),
        (
            lambda f: edit_schema(f, unnamed_first_object),
            ArtifactError,
            "cannot load .*an object without a module and name",
        ),
        (
            lambda f: rewrite(f, artifact.METADATA_FILE, json.dumps({**metadata_of(f), "model_sha256": "0" * 64})),
            ArtifactError,
            "model.skops does not match the sha256 in its metadata",
        ),
        (lambda f: rewrite(f, artifact.METADATA_FILE, ""), ArtifactError, "cannot read .*metadata.json"),
        (lambda f: rewrite(f, artifact.METADATA_FILE, "{broken"), ArtifactError, "cannot read .*metadata.json"),
        (
            lambda f: rewrite(f, artifact.METADATA_FILE, "[1, 2]"),
            ArtifactError,
            "metadata.json does not hold a JSON object",
        ),
        (
            lambda f: edit_metadata(f, train_data={"rows": 1}),
            ArtifactError,
            "train_data must record the training data's sha256",
        ),
        (
            lambda f: rewrite(f, artifact.METRICS_FILE, '{"holdout": {}}'),
            ArtifactError,
            "metrics.json lacks the holdout AUC",
        ),
        (
            lambda f: edit_metadata(f, sklearn_version=f"{MAJOR}.{MINOR + 1}.0"),
            LibraryMismatch,
            rf"install scikit-learn=={MAJOR}\.{MINOR + 1}\.0 .*retrain",
        ),
        (
            lambda f: edit_metadata(f, sklearn_version="1.5; --index-url http://example.com"),
            ArtifactError,
            "is not a scikit-learn version",
        ),
        # refused as no two-class model, or sooner: gradient boosting on three classes holds another loss
        (lambda f: replace_model(f, fitted(train.build_model(), classes=3)), ArtifactError, "two-class|not trust"),
    ],
    ids=[
        "missing-folder",
        "no-manifest",
        "linked-manifest",
        "manifest-not-a-map",
        "no-model-file",
        "linked-model-file",
        "model-file-changed",
        "model-file-not-skops",
        "schema-object-without-a-name",
        "metadata-naming-another-model",
        "metadata-empty",
        "metadata-broken",
        "metadata-not-an-object",
        "train-data-without-its-sha256",
        "metrics-without-the-holdout-auc",
        "another-scikit-learn-minor-version",
        "scikit-learn-version-not-a-version",
        "three-classes",
    ],
)
def test_a_folder_that_cannot_be_served_is_refused_naming_the_problem(folder, tamper, error, refusal):
    tamper(folder)
    with pytest.raises(error, match=refusal):
        artifact.load(folder)


@pytest.mark.parametrize(
    ("plant", "name", "once_listed"),
    [
        (lambda f: (f / "notes.txt").write_text("planted"), "notes.txt", "only model files"),
        (lambda f: (f / "model.skops.bak").write_text("planted"), "model.skops.bak", "only model files"),
        (lambda f: (f / "extra").write_text("planted"), "extra", "only model files"),
        (lambda f: (f / "report.md").symlink_to(f.parent / "secret"), "report.md", "missing or not a regular file"),
    ],
    ids=["notes", "backup-of-the-model", "no-extension", "linked-report"],
)
def test_a_file_or_link_the_manifest_does_not_list_is_refused_by_name(folder, plant, name, once_listed):
    (folder.parent / "secret").write_text("not a report")
    plant(folder)
    with pytest.raises(ArtifactError, match=f"links, unknown files\\): {name}$"):
        artifact.verify(folder)
    reseal(folder)  # listing it in the manifest does not help
    with pytest.raises(ArtifactError, match=once_listed):
        artifact.verify(folder)


def test_a_model_saved_outside_a_git_repository_records_no_commit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for variable in ("GIT_DIR", "GIT_WORK_TREE"):  # set when run from a git hook
        monkeypatch.delenv(variable, raising=False)
    metadata = artifact.save(fitted(StandardScaler()), tmp_path / "model", {}, {})
    assert (metadata["git_commit"], metadata["git_dirty"]) == (None, None)
    assert metadata_of(tmp_path / "model") == metadata
