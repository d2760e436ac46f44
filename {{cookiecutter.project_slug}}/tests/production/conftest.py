"""Fixtures of the production loop's tests: a /metrics reader, and a prediction log with its labels."""

import uuid
from datetime import datetime, timezone

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.data import Dataset, read_csv, write_csv
from {{ cookiecutter.package_name }}.features import FEATURES
from {{ cookiecutter.package_name }}.production.feedback import label_record, prediction_record, write_jsonl
from {{ cookiecutter.package_name }}.production.metrics import PREFIX


@pytest.fixture
def metric():
    """Read one sample of a test client's /metrics, parsed by prometheus-client's own parser (None when absent)."""

    def read(client, name: str, **labels: str) -> float | None:
        text = client.get("/metrics").get_data(as_text=True)
        samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]
        return next((s.value for s in samples if s.name == f"{PREFIX}_{name}" and s.labels == labels), None)

    return read


@pytest.fixture(scope="session")
def worse_model_dir(tmp_path_factory, data_files):
    """A version that ranks rows nearly at random: trained on the training rows with their labels shuffled."""
    from {{ cookiecutter.package_name }}.train import train

    folder = tmp_path_factory.mktemp("shuffled")
    data = read_csv(data_files[0])
    write_csv(folder / "train.csv", Dataset(data.X, np.random.default_rng(0).permutation(data.y)))
    model, _ = train(folder / "train.csv", data_files[1], folder / "artifacts", seed=0)
    return model


@pytest.fixture
def write_live(tmp_path, valid_row):
    """Log scored rows as the service does and their labels as feedback does; return the two folders."""
    predictions, feedback = tmp_path / "predictions", tmp_path / "feedback"

    def write(version, y, score, *, shadow=None, shadow_score=None, X=None, labelled=datetime(2026, 1, 7)):
        batch = uuid.uuid4().hex[:8]
        cast = {"float": float, "int": int, "bool": bool}
        rows = [
            valid_row if X is None else {f.name: cast[f.kind](v) for f, v in zip(FEATURES, X[i], strict=True)}
            for i in range(len(y))
        ]
        now = datetime.now(timezone.utc)
        shadow_scores = [None] * len(y) if shadow is None else [float(s) for s in shadow_score]
        records = [
            prediction_record(batch, i, now, version, rows[i], float(score[i]), shadow, shadow_scores[i])
            for i in range(len(y))
        ]
        write_jsonl(predictions / f"{batch}.jsonl", records)
        arrived = labelled if labelled.tzinfo else labelled.replace(tzinfo=timezone.utc)
        write_jsonl(feedback / f"{batch}.jsonl", [label_record(batch, i, int(y[i]), arrived) for i in range(len(y))])
        return predictions, feedback

    return write
