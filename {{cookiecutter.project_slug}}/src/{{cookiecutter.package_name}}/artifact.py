"""A trained model as a folder (model file, metadata, metrics, manifest), verified against an allow-list on load."""

from __future__ import annotations

import functools
import io
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
from .features import FEATURES, Feature, Kind

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
# EDIT HERE, rarely: a model file may hold exactly what build_model() in train.py
# holds once fitted on a few rows, so the allow-list follows the estimator. List
# a "module.name" here only for what such a fit does not show (tests/test_artifact.py
# names it); listing a function lets a model file call it.
# ----------------------------------------------------------------------------
TRUSTED_TYPES: tuple[str, ...] = ()


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


@functools.cache
def trusted_nodes() -> tuple[frozenset[tuple[str, str]], object]:
    """What build_model() holds once fitted, as (skops loader, name) pairs, and the skops protocol that wrote them."""
    import numpy as np
    import skops.io

    from .train import build_model  # here: train.py imports this module to save what it fits

    rows = np.random.default_rng(0).random((40, len(FEATURES)))
    try:
        fitted = build_model().fit(rows, np.arange(len(rows)) % 2)
    except Exception as error:  # whatever the estimator raises on a few random rows
        raise ArtifactError(f"build_model() fails on a few rows, so no model file can be trusted: {error}") from None
    return schema_nodes(skops.io.dumps(fitted))


def schema_nodes(model: bytes | Path) -> tuple[frozenset[tuple[str, str]], object]:
    """Every (loader, name) pair a skops file's schema holds, read without loading anything, and its protocol."""
    found = set()

    def note(node: dict) -> dict:  # json calls it on each object of the schema, however deeply nested
        if node.keys() & {"__class__", "__module__", "__loader__"} and node.get("__loader__") != "CachedNode":
            module, name, loader = node.get("__module__"), node.get("__class__"), node.get("__loader__")
            if not all(isinstance(part, str) for part in (module, name, loader)):
                raise ValueError(f"an object without a module and name (or loader): {str(node)[:80]}")
            if loader == "MethodNode":  # a bound method: Class.method, trusted only by that name
                content = node.get("content")
                name += f".{content.get('func') if isinstance(content, dict) else None}"
            found.add((loader, f"{module}.{name}"))
        return node

    with zipfile.ZipFile(io.BytesIO(model) if isinstance(model, bytes) else model) as archive:
        schema = json.loads(archive.read("schema.json"), object_hook=note)
    return frozenset(found), schema.get("protocol")


def untrusted(model_file: Path) -> list[str]:
    """What a skops file holds that build_model() does not (and TRUSTED_TYPES does not list), sorted; [] to load it."""
    allowed, protocol = trusted_nodes()
    try:
        found, saved = schema_nodes(model_file)
    except Exception as error:  # zipfile and json raise many kinds on a malformed file
        raise ArtifactError(f"cannot load {model_file}: {error}") from None
    # a listed name loads only through the loaders that build what their node names: others build a fixed type
    # whatever the node says (a partial, a masked array, a sparse matrix)
    listed = {
        (loader, name) for loader in ("ObjectNode", "TypeNode", "FunctionNode", "MethodNode") for name in TRUSTED_TYPES
    }
    refused = [f"{name} ({loader})" for loader, name in sorted(found - allowed - listed, key=lambda pair: pair[::-1])]
    if saved != protocol:  # an older protocol brings older loaders, such as a function loader reading its own name
        refused.append(f"skops protocol {saved!r} (this skops writes {protocol!r})")
    return refused


def check_bounds(estimator: object, width: int, model_file: Path) -> None:
    """Refuse trees whose nodes point outside the tree or the row: scikit-learn follows them without bounds checks."""
    import numpy as np
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    seen, stack, trees = set(), [estimator], []
    while stack:  # every object the estimator holds, however nested
        held = stack.pop()
        if id(held) in seen or isinstance(held, (str, bytes, int, float)):
            continue
        seen.add(id(held))
        if isinstance(held, Tree):
            trees.append((held.children_left, held.children_right, held.feature))
        elif isinstance(held, TreePredictor):
            leaf, nodes = held.nodes["is_leaf"].astype(bool), held.nodes
            if nodes["is_categorical"][~leaf].any():
                raise ArtifactError(f"{model_file} holds a tree split on categories, which this project does not serve")
            trees.append([np.where(leaf, -1, nodes[key].astype(np.int64)) for key in ("left", "right", "feature_idx")])
        elif isinstance(held, dict):
            stack.extend(held.values())
        elif isinstance(held, (list, tuple)):
            stack.extend(held)
        elif isinstance(held, np.ndarray):
            stack.extend(held.ravel() if held.dtype.kind == "O" else ())
        else:
            stack.extend(getattr(held, "__dict__", {}).values())
    for left, right, feature in trees:  # a split node's children come after it (no loop) and inside the tree
        index, split = np.arange(len(left)), left != -1
        inside = [((child[split] > index[split]) & (child[split] < len(left))).all() for child in (left, right)]
        inside.append(((feature[split] >= 0) & (feature[split] < width)).all() and ((right != -1) == split).all())
        if not all(inside):
            raise ArtifactError(f"{model_file} holds a tree whose nodes point outside the tree or the row: refusing it")


def save(estimator: object, folder: Path, metadata: dict, metrics: dict) -> dict:
    """Write a model folder; returns the full metadata, including the version id and hashes."""
    import skops.io  # here, not at the top: commands that only read the registry start without scikit-learn

    folder.mkdir(parents=True, exist_ok=True)
    skops.io.dump(estimator, folder / MODEL_FILE)
    model_sha = sha256_of(folder / MODEL_FILE)
    created = datetime.now(timezone.utc)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
        git = {"git_commit": commit, "git_dirty": bool(status)}
    except (OSError, subprocess.CalledProcessError):
        git = {"git_commit": None, "git_dirty": None}  # outside a git repository
    full = {
        "version": f"{created:%Y%m%d-%H%M%S}-{model_sha[:8]}",
        "created_at": created.isoformat(timespec="seconds"),
        **git,
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
    if duplicated := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"duplicated: {', '.join(duplicated)}")
    return features


def verify(folder: Path) -> dict:
    """Check a model folder: manifest, metadata, metrics, scikit-learn version and allow-list; return its metadata."""
    manifest, where = folder / MANIFEST_FILE, folder / METADATA_FILE
    if manifest.is_symlink():
        raise ArtifactError(f"{manifest} is a symbolic link")
    files = read_json(manifest).get("files")
    if not isinstance(files, dict) or not all(isinstance(sha, str) for sha in files.values()):
        raise ArtifactError(f"{manifest} does not map file names to sha256")
    if set(files) - {*MODEL_FILES, *REPORT_FILES} or set(MODEL_FILES) - set(files):
        raise ArtifactError(f"{manifest} must list {', '.join(MODEL_FILES)} and only model files")
    for name, sha in files.items():
        path = folder / name
        if path.is_symlink() or not path.is_file():
            raise ArtifactError(f"{path} is missing or not a regular file")
        if sha256_of(path) != sha:
            raise ArtifactError(f"{path} does not match its sha256 in {MANIFEST_FILE}: refusing a tampered model")
    # the gate may write its report into the folder after training; registering adds it to the manifest
    unlisted = [path for path in folder.iterdir() if path.name not in (MANIFEST_FILE, *files)]
    if extra := sorted(p.name for p in unlisted if p.name not in REPORT_FILES or p.is_symlink() or not p.is_file()):
        raise ArtifactError(f"{folder} holds what a model folder must not (links, unknown files): {', '.join(extra)}")
    metadata = read_json(where)
    if missing := [key for key in REQUIRED if key not in metadata]:
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
        install = f"install scikit-learn=={saved} to load it, or retrain it"
        raise LibraryMismatch(f"{folder} was saved by scikit-learn {saved}, this is {running}: {install}")
    if refused := untrusted(folder / MODEL_FILE):
        trusted = "it trusts what build_model() in train.py holds once fitted, and TRUSTED_TYPES in artifact.py"
        raise ArtifactError(
            f"{folder / MODEL_FILE} holds what this project does not trust: {', '.join(refused)} ({trusted})"
        )
    return metadata


def load(folder: Path) -> LoadedModel:
    """Verify and load a model folder: only what build_model() holds, able to score its features, with sound trees."""
    import skops.io  # imported on first load: see save()

    metadata = verify(folder)
    model_file = folder / MODEL_FILE
    try:
        # verify checked every object of the schema, loader and name: skops builds what it let through
        trusted = skops.io.get_untrusted_types(file=model_file)
        with LOADING:
            estimator = skops.io.load(model_file, trusted=trusted)
    except Exception as error:  # skops raises many kinds on a malformed file
        raise ArtifactError(f"cannot load {model_file}: {error}") from None
    features = check_features(metadata["features"])
    names = [feature.name for feature in features]
    if not hasattr(estimator, "predict_proba"):
        raise ArtifactError(f"{model_file} holds a {type(estimator).__name__}, which has no predict_proba")
    width = getattr(estimator, "n_features_in_", len(names))
    if width != len(names):
        raise ArtifactError(f"{model_file} expects {width} features, its metadata lists {len(names)}")
    fitted_names = getattr(estimator, "feature_names_in_", None)
    if fitted_names is not None and list(fitted_names) != names:
        raise ArtifactError(f"{model_file} was fitted on the features {list(fitted_names)}, its metadata lists {names}")
    if len(getattr(estimator, "classes_", (0, 1))) != 2:
        raise ArtifactError(f"{model_file} does not hold a two-class model")
    check_bounds(estimator, len(features), model_file)
    return LoadedModel(estimator, metadata, metadata["version"], features)
