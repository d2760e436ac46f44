"""Training: a deterministic model folder with full lineage metadata and holdout metrics."""

import re

import numpy as np
import pytest
import sklearn
import skops

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.data import read_csv, sha256_of
from {{ cookiecutter.package_name }}.features import FEATURES, feature_names
from {{ cookiecutter.package_name }}.train import build_model, train


def test_training_is_deterministic_for_a_seed_that_reaches_every_part_that_takes_one(tmp_path, data_files):
    first, _ = train(*data_files, tmp_path / "first", seed=3)
    again, _ = train(*data_files, tmp_path / "again", seed=3)
    holdout = read_csv(data_files[1])
    assert np.array_equal(artifact.load(first).probability(holdout.X), artifact.load(again).probability(holdout.X))
    seeded = {key: value for key, value in build_model(seed=5).get_params().items() if key.endswith("random_state")}
    assert all(value == 5 for value in seeded.values()), seeded


def test_metadata_records_the_sha256_of_the_lock_of_the_environment_that_trained_it(tmp_path, data_files, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "uv.lock").write_text("version = 1\n")
    expected = sha256_of(tmp_path / "uv.lock")
    _, locked = train(*data_files, tmp_path / "locked")
    (tmp_path / "uv.lock").unlink()
    _, unlocked = train(*data_files, tmp_path / "unlocked")
    assert (locked["lock_sha256"], unlocked["lock_sha256"]) == (expected, None)


def test_a_model_folder_holds_only_its_model_and_metadata_with_version_lineage_and_library_versions(model_dir, source):
    assert sorted(path.name for path in model_dir.iterdir()) == [
        "manifest.json",
        "metadata.json",
        "metrics.json",
        "model.skops",
    ]
    assert [path.name for path in model_dir.parent.iterdir()] == [model_dir.name]  # no half-written folder left
    metadata = artifact.read_json(model_dir / artifact.METADATA_FILE)
    assert {
        "version",
        "created_at",
        "git_commit",
        "git_dirty",
        "model_sha256",
        "train_data",
        "holdout_data",
        "data_source",
        "parameters",
        "features",
        "python_version",
        "sklearn_version",
        "skops_version",
    } <= metadata.keys()
    assert metadata["version"] == model_dir.name
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{8}", metadata["version"])
    assert metadata["version"].endswith(metadata["model_sha256"][:8])
    assert metadata["model_sha256"] == sha256_of(model_dir / artifact.MODEL_FILE)
    rows = len(read_csv(source.train).y)
    assert metadata["train_data"] == {"path": str(source.train), "sha256": sha256_of(source.train), "rows": rows}
    assert metadata["holdout_data"]["sha256"] == sha256_of(source.holdout)
    assert metadata["data_source"] == source.lineage
    assert metadata["parameters"]["seed"] == 0
    nested = {key: repr(value) for key, value in build_model(0).get_params(deep=True).items() if "__" in key}
    assert nested.items() <= metadata["parameters"].items()
    assert metadata["features"] == [feature.to_dict() for feature in FEATURES]
    assert (metadata["sklearn_version"], metadata["skops_version"]) == (sklearn.__version__, skops.__version__)
    assert metadata["git_dirty"] in (True, False, None)


def test_metrics_hold_the_holdout_auc_with_its_interval_and_a_drift_profile_of_every_feature(
    model_dir, data_files, gate_settings
):
    metrics = artifact.read_json(model_dir / artifact.METRICS_FILE)
    holdout = metrics["holdout"]
    assert holdout["ci_low"] <= holdout["auc"] <= holdout["ci_high"] and holdout["ci_low"] < holdout["ci_high"]
    assert holdout["auc"] > gate_settings.min_auc  # the configured data is learnable enough for the tests' gate
    labels = read_csv(data_files[1]).y
    assert (holdout["positives"], holdout["negatives"]) == (labels.sum(), len(labels) - labels.sum())
    assert holdout["confidence"] == 0.95
    assert list(metrics["train_profile"]) == feature_names()
    for name, bins in metrics["train_profile"].items():
        assert sum(bins["shares"]) == pytest.approx(1.0), name
        assert len(bins["shares"]) == len(bins["edges"]) + 1, name
