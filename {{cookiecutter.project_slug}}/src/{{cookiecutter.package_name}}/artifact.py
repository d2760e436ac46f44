"""A trained model as a folder: model.skops, metadata.json and metrics.json, verified on load."""

from __future__ import annotations

import json
import platform
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sklearn
import skops
import skops.io

from .data import sha256_of
from .features import Feature

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
METRICS_FILE = "metrics.json"
LOCK_FILE = Path("uv.lock")  # the project's lock, beside pyproject.toml in the folder the commands run from
REQUIRED = ("version", "features", "model_sha256", "train_data", "python_version", "sklearn_version", "skops_version")
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a folder name: no path separator, no dot first


class ArtifactError(Exception):
    """A model folder is missing, unreadable, tampered with, or from another scikit-learn."""


class LibraryMismatch(ArtifactError):
    """A model saved by another scikit-learn minor version: it loads only with the version that saved it."""

    def __init__(self, folder: Path, saved: str, running: str) -> None:
        """Name the folder and both versions, and say how to load it."""
        self.saved, self.running = saved, running
        super().__init__(
            f"{folder} was saved by scikit-learn {saved}, this is {running}: "
            f"install scikit-learn=={saved} to load it, or retrain it"
        )


@dataclass(frozen=True)
class LoadedModel:
    """A verified model ready to score rows given in its feature order."""

    estimator: object
    metadata: dict

    @property
    def version(self) -> str:
        """The model's version id."""
        return self.metadata["version"]

    @property
    def features(self) -> tuple[Feature, ...]:
        """The features the model was trained on, in input order."""
        return tuple(Feature.from_dict(item) for item in self.metadata["features"])

    def probability(self, X: np.ndarray) -> np.ndarray:
        """Probability of the positive class (the label 1) for each row of ``X``."""
        return self.estimator.predict_proba(X)[:, 1]


def git_state() -> dict:
    """The current git commit and whether the work tree has uncommitted changes (None outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        status = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit.strip(), "git_dirty": bool(status.strip())}


def lock_sha256(lock: Path = LOCK_FILE) -> str | None:
    """The sha256 of the project's lock file (None without one): which environment trained the model."""
    return sha256_of(lock) if lock.is_file() else None


def save(estimator: object, folder: Path, metadata: dict, metrics: dict) -> dict:
    """Write a model folder; returns the full metadata, including the version id and hashes."""
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
        "sklearn_version": sklearn.__version__,
        "skops_version": skops.__version__,
        "lock_sha256": lock_sha256(),
    }
    (folder / METADATA_FILE).write_text(json.dumps(full, indent=2) + "\n")
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return full


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


def verify(folder: Path) -> dict:
    """Check a model folder: its metadata and metrics, the model's sha256 and scikit-learn version; return metadata."""
    metadata = read_json(folder / METADATA_FILE)
    missing = [key for key in REQUIRED if key not in metadata]
    if missing:
        raise ArtifactError(f"{folder / METADATA_FILE} lacks {', '.join(missing)}")
    if not VERSION_NAME.fullmatch(str(metadata["version"])):
        raise ArtifactError(f"{folder / METADATA_FILE}: {metadata['version']!r} is not a version name")
    try:
        [Feature.from_dict(item) for item in metadata["features"]]
    except (TypeError, ValueError, KeyError) as error:
        raise ArtifactError(f"{folder / METADATA_FILE}: the feature list is broken: {error}") from None
    read_json(folder / METRICS_FILE)
    model_file = folder / MODEL_FILE
    if not model_file.is_file():
        raise ArtifactError(f"{model_file} is missing")
    if sha256_of(model_file) != metadata.get("model_sha256"):
        raise ArtifactError(f"{model_file} does not match the sha256 in its metadata: refusing a tampered model")
    saved, running = str(metadata.get("sklearn_version")), sklearn.__version__
    if saved.split(".")[:2] != running.split(".")[:2]:
        raise LibraryMismatch(folder, saved, running)
    return metadata


def load(folder: Path) -> LoadedModel:
    """Verify and load a model folder, trusting only scikit-learn's own types in the skops file."""
    metadata = verify(folder)
    model_file = folder / MODEL_FILE
    try:
        untrusted = skops.io.get_untrusted_types(file=model_file)
        foreign = [name for name in untrusted if not name.startswith("sklearn.")]
        if foreign:
            raise ArtifactError(f"{model_file} holds types outside scikit-learn: {', '.join(foreign)}")
        estimator = skops.io.load(model_file, trusted=untrusted)
    except ArtifactError:
        raise
    except Exception as error:  # skops raises many kinds on a malformed file
        raise ArtifactError(f"cannot load {model_file}: {error}") from None
    if not hasattr(estimator, "predict_proba"):
        raise ArtifactError(f"{model_file} holds a {type(estimator).__name__}, which has no predict_proba")
    return LoadedModel(estimator, metadata)
