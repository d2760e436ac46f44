"""A trained model as a folder: model.skops, metadata.json, metrics.json and manifest.json, verified on load.

A model file may hold only the classes of an allow-list, checked against the file's schema before skops builds it.
"""

from __future__ import annotations

import json
import math
import platform
import re
import subprocess
import threading
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from .data import sha256_of
from .features import Feature, Kind

if TYPE_CHECKING:
    import numpy as np

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = Path("uv.lock")  # the project's lock, beside pyproject.toml in the folder the commands run from
MODEL_FILES = (MODEL_FILE, METADATA_FILE, METRICS_FILE)  # written by save, always in the manifest
REPORT_FILES = ("gate.json", "report.md", "roc.png")  # the gate's, added to the manifest when registered
REQUIRED = ("version", "features", "model_sha256", "train_data", "python_version", "sklearn_version", "skops_version")
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a folder name: no path separator, no dot first
LIBRARY_VERSION = re.compile(r"[0-9]+(\.[0-9]+)+[0-9a-z.+-]{0,30}")
# loads take turns: numpy reads array headers with ast.literal_eval, whose depth CPython 3.11 counts per process,
# so two at once (a service swapping models while the shadow loads) can fail (python/cpython#106905)
LOADING = threading.Lock()


# ----------------------------------------------------------------------------
# EDIT HERE: the classes a model file may hold, as "module.Class". Loading refuses
# every other class, and every function or method (a FunctionTransformer's func,
# say) unless it is listed here too: listing one lets a model file call it. These
# are the classes of build_model() in train.py; change one, run the tests, and
# tests/test_artifact.py names each class to add.
# ----------------------------------------------------------------------------
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._logistic.LogisticRegression",
)

# Trusted too, so that swapping in a tree ensemble needs no edit above: the classes (no function or method) that a
# fitted HistGradientBoostingClassifier, GradientBoostingClassifier, RandomForestClassifier or ExtraTreesClassifier
# holds, in scikit-learn's private modules: the lock pins its version, tests/test_artifact.py names one that moves.
TREE_ENSEMBLES: tuple[str, ...] = (
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.dummy.DummyClassifier",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.Interval",
)


class ArtifactError(Exception):
    """A model folder is missing, unreadable, tampered with, or from another scikit-learn."""


class LibraryMismatch(ArtifactError):
    """A model saved by another scikit-learn minor version: it loads only with the version that saved it."""


@dataclass(frozen=True)
class LoadedModel:
    """A verified model ready to score rows given in its feature order."""

    estimator: object
    metadata: dict
    version: str
    features: tuple[Feature, ...]  # the features the model was trained on, in input order

    def probability(self, X: np.ndarray) -> np.ndarray:
        """Probability of the positive class (the label 1) for each row of ``X``."""
        return self.estimator.predict_proba(X)[:, 1]


def trusted_types() -> frozenset[str]:
    """Every type, function and method a model file may name: plain data, TRUSTED_TYPES and TREE_ENSEMBLES."""
    import numpy as np  # here, not at the top: commands that only read the registry start without numpy

    return frozenset(
        {f"builtins.{name}" for name in ("bool", "bytes", "dict", "float", "int", "list", "slice", "str", "tuple")}
        | {f"numpy.{kind.__name__}" for kind in np.sctypeDict.values()}  # numpy's scalar types
        | {"numpy.ndarray", "numpy.dtype", "numpy.random.mtrand.RandomState", "numpy.random._generator.Generator"}
        | {*TRUSTED_TYPES, *TREE_ENSEMBLES}
    )


def types_in(model_file: Path) -> set[str]:
    """Every type, function and method a skops file names, read from its schema without loading anything."""
    names = set()

    def note(node: dict) -> dict:  # json calls it on each object of the schema, however deeply nested
        if node.keys() & {"__class__", "__module__", "__loader__"} and node.get("__loader__") != "CachedNode":
            module, name = node.get("__module__"), node.get("__class__")
            if not (isinstance(module, str) and isinstance(name, str)):
                raise ValueError(f"an object without a module and name: {str(node)[:80]}")
            if node.get("__loader__") == "MethodNode":  # a bound method: Class.method, trusted only by that name
                content = node.get("content")
                name += f".{content.get('func') if isinstance(content, dict) else None}"
            names.add(f"{module}.{name}")
        return node

    with zipfile.ZipFile(model_file) as archive:
        json.loads(archive.read("schema.json"), object_hook=note)
    return names


def untrusted(model_file: Path) -> list[str]:
    """The types, functions and methods a skops file names outside trusted_types(), sorted; [] when it may load."""
    try:
        return sorted(types_in(model_file) - trusted_types())
    except Exception as error:  # zipfile and json raise many kinds on a malformed file
        raise ArtifactError(f"cannot load {model_file}: {error}") from None


def git_state() -> dict:
    """The current git commit and whether the work tree has uncommitted changes (None outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        status = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit.strip(), "git_dirty": bool(status.strip())}


def save(estimator: object, folder: Path, metadata: dict, metrics: dict) -> dict:
    """Write a model folder; returns the full metadata, including the version id and hashes."""
    import skops.io  # here, not at the top: commands that only read the registry start without scikit-learn

    folder.mkdir(parents=True, exist_ok=True)
    skops.io.dump(estimator, folder / MODEL_FILE)
    model_sha = sha256_of(folder / MODEL_FILE)
    created = datetime.now(timezone.utc)
    full = {
        "version": f"{created:%Y%m%d-%H%M%S}-{model_sha[:8]}",
        "created_at": created.isoformat(timespec="seconds"),
        **git_state(),
        "model_sha256": model_sha,
        **metadata,
        "python_version": platform.python_version(),
        "sklearn_version": installed_version("scikit-learn"),
        "skops_version": installed_version("skops"),
        "lock_sha256": sha256_of(LOCK_FILE) if LOCK_FILE.is_file() else None,  # the environment that trained it
    }
    (folder / METADATA_FILE).write_text(json.dumps(full, indent=2) + "\n")
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    write_manifest(folder)
    return full


def write_manifest(folder: Path, names: Iterable[str] = MODEL_FILES) -> None:
    """Record the sha256 of each named file of a model folder in its manifest.json."""
    files = {name: sha256_of(folder / name) for name in sorted(names)}
    (folder / MANIFEST_FILE).write_text(json.dumps({"files": files}, indent=2) + "\n")


def check_manifest(folder: Path) -> dict[str, str]:
    """Check each file of a model folder against manifest.json, refusing links and unknown files; return it."""
    if (folder / MANIFEST_FILE).is_symlink():
        raise ArtifactError(f"{folder / MANIFEST_FILE} is a symbolic link")
    files = read_json(folder / MANIFEST_FILE).get("files")
    if not isinstance(files, dict) or not all(isinstance(sha, str) for sha in files.values()):
        raise ArtifactError(f"{folder / MANIFEST_FILE} does not map file names to sha256")
    if set(files) - {*MODEL_FILES, *REPORT_FILES} or set(MODEL_FILES) - set(files):
        raise ArtifactError(f"{folder / MANIFEST_FILE} must list {', '.join(MODEL_FILES)} and only model files")
    for name, sha in files.items():
        path = folder / name
        if path.is_symlink() or not path.is_file():
            raise ArtifactError(f"{path} is missing or not a regular file")
        if sha256_of(path) != sha:
            raise ArtifactError(f"{path} does not match its sha256 in {MANIFEST_FILE}: refusing a tampered model")
    unlisted = [path for path in folder.iterdir() if path.name != MANIFEST_FILE and path.name not in files]
    # the gate may write its report into the folder after training; registering adds it to the manifest
    extra = sorted(p.name for p in unlisted if p.name not in REPORT_FILES or p.is_symlink() or not p.is_file())
    if extra:
        raise ArtifactError(f"{folder} holds what a model folder must not (links, unknown files): {', '.join(extra)}")
    return files


def read_json(path: Path) -> dict:
    """Read a JSON object from a model folder, raising ArtifactError when it is missing or broken."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ArtifactError(f"cannot read {path}: {error}") from None
    if not isinstance(value, dict):
        raise ArtifactError(f"{path} does not hold a JSON object")
    return value


def lineage(folder: Path) -> dict:
    """A model folder's metadata and headline metrics as flat dotted keys ("parameters.seed"), for `diff`."""
    flat: dict = {}

    def walk(value, key: str) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                walk(inner, f"{key}.{name}" if key else name)
        else:
            flat[key] = value

    walk({**read_json(folder / METADATA_FILE), "metrics": read_json(folder / METRICS_FILE)["holdout"]}, "")
    return flat


def check_features(items: object) -> tuple[Feature, ...]:
    """The feature list of a model's metadata, refusing duplicates, unknown kinds and broken ranges."""
    if not isinstance(items, list) or not items:
        raise ValueError("it must be a non-empty list")
    features = tuple(Feature.from_dict(item) if isinstance(item, dict) else None for item in items)
    for feature in features:
        if feature is None or not isinstance(feature.name, str) or not feature.name:
            raise ValueError("each feature must be an object with a name")
        if feature.kind not in get_args(Kind):
            raise ValueError(f"{feature.name}: kind must be one of {', '.join(get_args(Kind))}")
        if not isinstance(feature.description, str) or not isinstance(feature.column, (str, type(None))):
            raise ValueError(f"{feature.name}: the description and the CSV column must be text")
        bounds = [b for b in (feature.minimum, feature.maximum) if b is not None]
        if not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds):
            raise ValueError(f"{feature.name}: minimum and maximum must be finite numbers or null")
        if len(bounds) == 2 and feature.minimum > feature.maximum:
            raise ValueError(f"{feature.name}: minimum is above maximum")
    names = [feature.name for feature in features]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(f"duplicated: {', '.join(duplicated)}")
    return features


def verify(folder: Path) -> dict:
    """Check a model folder: its manifest, metadata, metrics and scikit-learn version; return its metadata."""
    files = check_manifest(folder)
    where = folder / METADATA_FILE
    metadata = read_json(where)
    missing = [key for key in REQUIRED if key not in metadata]
    if missing:
        raise ArtifactError(f"{where} lacks {', '.join(missing)}")
    if not VERSION_NAME.fullmatch(str(metadata["version"])):
        raise ArtifactError(f"{where}: {metadata['version']!r} is not a version name")
    try:
        check_features(metadata["features"])
    except (TypeError, ValueError) as error:
        raise ArtifactError(f"{where}: the feature list is broken: {error}") from None
    if not isinstance(metadata["train_data"], dict) or not isinstance(metadata["train_data"].get("sha256"), str):
        raise ArtifactError(f"{where}: train_data must record the training data's sha256")
    holdout = read_json(folder / METRICS_FILE).get("holdout")
    if not isinstance(holdout, dict) or not isinstance(holdout.get("auc"), (int, float)):
        raise ArtifactError(f"{folder / METRICS_FILE} lacks the holdout AUC")
    if files[MODEL_FILE] != metadata["model_sha256"]:  # the manifest's sha256 is the file's, checked above
        raise ArtifactError(f"{folder / MODEL_FILE} does not match the sha256 in its metadata: refusing it")
    saved, running = str(metadata["sklearn_version"]), installed_version("scikit-learn")
    if not LIBRARY_VERSION.fullmatch(saved):
        raise ArtifactError(f"{where}: {saved[:40]!r} is not a scikit-learn version")
    if saved.split(".")[:2] != running.split(".")[:2]:
        raise LibraryMismatch(
            f"{folder} was saved by scikit-learn {saved}, this is {running}: "
            f"install scikit-learn=={saved} to load it, or retrain it"
        )
    refused = untrusted(folder / MODEL_FILE)
    if refused:
        raise ArtifactError(
            f"{folder / MODEL_FILE} holds types this project does not trust: {', '.join(refused)} "
            "(if build_model() uses them, add them to TRUSTED_TYPES in artifact.py)"
        )
    return metadata


def load(folder: Path) -> LoadedModel:
    """Verify and load a model folder; the skops file may name only the types in trusted_types()."""
    import skops.io  # imported on first load: see save()

    metadata = verify(folder)
    model_file = folder / MODEL_FILE
    try:
        # skops trusts its defaults plus the list given: only what verify let through, so skops refuses the rest
        trusted = sorted(set(skops.io.get_untrusted_types(file=model_file)) & trusted_types())
        with LOADING:
            estimator = skops.io.load(model_file, trusted=trusted)
    except Exception as error:  # skops raises many kinds on a malformed file
        raise ArtifactError(f"cannot load {model_file}: {error}") from None
    features = check_features(metadata["features"])
    check_estimator(estimator, features, model_file)
    return LoadedModel(estimator, metadata, metadata["version"], features)


def check_estimator(estimator: object, features: tuple[Feature, ...], model_file: Path) -> None:
    """Refuse an estimator that cannot score the metadata's features: no predict_proba, another width or order."""
    if not hasattr(estimator, "predict_proba"):
        raise ArtifactError(f"{model_file} holds a {type(estimator).__name__}, which has no predict_proba")
    names = [feature.name for feature in features]
    width = getattr(estimator, "n_features_in_", len(names))
    if width != len(names):
        raise ArtifactError(f"{model_file} expects {width} features, its metadata lists {len(names)}")
    fitted_names = getattr(estimator, "feature_names_in_", None)
    if fitted_names is not None and list(fitted_names) != names:
        raise ArtifactError(f"{model_file} was fitted on the features {list(fitted_names)}, its metadata lists {names}")
    if len(getattr(estimator, "classes_", (0, 1))) != 2:
        raise ArtifactError(f"{model_file} does not hold a two-class model")
