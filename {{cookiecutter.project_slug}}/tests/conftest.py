"""Shared fixtures: the configured data source (kept small), one trained model, a registry serving it, the app."""

import csv
import dataclasses
import json
import os
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from werkzeug.serving import make_server

from {{ cookiecutter.package_name }}.config import SOURCES, TABLE, GateSettings, Settings, load_settings
from {{ cookiecutter.package_name }}.data import DataFiles, Dataset, prepare, read_csv
from {{ cookiecutter.package_name }}.features import FEATURES, LABEL, Feature
from {{ cookiecutter.package_name }}.registry import Registry

# train and create_app are imported in the fixtures that use them: pytest-xdist's controller process loads this file
# too but runs no test, and so it starts without scikit-learn and the service's request models, about a second sooner
PROJECT = Path(__file__).resolve().parents[1]
# rows per file when the source is the synthetic example: a fast suite, yet about 120 positives for a stable AUC
SYNTHETIC_ROWS = 4_000


@pytest.fixture(scope="session")
def configured(tmp_path_factory) -> Settings:
    """The project's settings from its pyproject.toml: data files found from the project folder, small synthetic sets.

    Registry, data and artifact folders are temporary; treat the files they hold as read-only.
    """
    settings = load_settings(PROJECT / "pyproject.toml")
    named = [key for key in ("path", "holdout_path") if getattr(settings.data, key) != Path()]
    files = {key: PROJECT / getattr(settings.data, key) for key in named}
    folder = tmp_path_factory.mktemp("configured")
    return replace(
        settings,
        data=replace(settings.data, **files),
        registry=folder / "registry",
        data_dir=folder / "data",
        artifacts=folder / "artifacts",
        train_rows=SYNTHETIC_ROWS,
        holdout_rows=SYNTHETIC_ROWS,
    )


@pytest.fixture(scope="session")
def source(configured) -> DataFiles:
    """The configured data source's training and holdout CSVs, written once per session (treat them as read-only)."""
    return prepare(configured)


@pytest.fixture(scope="session")
def data_files(source) -> tuple[Path, Path]:
    """The training and holdout CSVs of the configured data source (treat them as read-only)."""
    return source.train, source.holdout


@pytest.fixture(scope="session")
def week0(data_files) -> tuple[Path, Path]:
    """The former name of ``data_files``, for tests not yet renamed."""
    return data_files


@pytest.fixture(scope="session")
def data_table(configured) -> str:
    """The configured [tool.<package>.data] table as TOML, file paths absolute: for a project in another folder."""
    data = configured.data
    lines = [f"[tool.{TABLE}.data]", f"source = {json.dumps(data.source)}"]
    for key in SOURCES[data.source]:
        value = getattr(data, key)
        lines.append(f"{key} = {json.dumps(str(value) if isinstance(value, Path) else value)}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def valid_row(data_files) -> dict:
    """A valid request body: the first holdout row as JSON values of the declared kinds."""
    cast = {"float": float, "int": int, "bool": bool}
    row = read_csv(data_files[1]).X[0]
    return {f.name: cast[f.kind](value) for f, value in zip(FEATURES, row, strict=True)}


@pytest.fixture(scope="session")
def draw_holdout(data_files):
    """A function drawing ``n`` holdout rows with replacement (seeded): as many labelled rows as a test needs."""
    holdout = read_csv(data_files[1])

    def draw(n: int, seed: int = 0) -> Dataset:
        rows = np.random.default_rng(seed).integers(0, len(holdout.y), n)
        return Dataset(holdout.X[rows], holdout.y[rows])

    return draw


@pytest.fixture(scope="session")
def draw_training(data_files):
    """A function drawing ``n`` training rows with replacement (seeded): rows as the model saw them, whose drift
    against its training profile is sampling noise only, however small the table."""
    training = read_csv(data_files[0])

    def draw(n: int, seed: int = 0) -> Dataset:
        rows = np.random.default_rng(seed).integers(0, len(training.y), n)
        return Dataset(training.X[rows], training.y[rows])

    return draw


@pytest.fixture(scope="session")
def valid_rows(data_files) -> list[dict]:
    """Ten valid rows for a batch: the first holdout rows as JSON values of the declared kinds."""
    cast = {"float": float, "int": int, "bool": bool}
    return [
        {f.name: cast[f.kind](value) for f, value in zip(FEATURES, row, strict=True)}
        for row in read_csv(data_files[1]).X[:10]
    ]


@pytest.fixture(scope="session")
def unbounded_features() -> tuple[Feature, ...]:
    """The declared features with no minimum or maximum for any number, as features.py allows."""
    return tuple(dataclasses.replace(f, minimum=None, maximum=None) if f.kind != "bool" else f for f in FEATURES)


@pytest.fixture(scope="session")
def unbounded_model_dir(tmp_path_factory, data_files, unbounded_features) -> Path:
    """A model of the configured data whose features declare no bounds (treat it as read-only)."""
    from {{ cookiecutter.package_name }}.train import train

    folder, _ = train(*data_files, tmp_path_factory.mktemp("unbounded"), seed=0, features=unbounded_features)
    return folder


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, source) -> Path:
    """A model folder trained on the configured data with seed 0 (treat it as read-only)."""
    from {{ cookiecutter.package_name }}.train import train

    folder, _ = train(source.train, source.holdout, tmp_path_factory.mktemp("artifacts"), seed=0, source=source.lineage)
    return folder


@pytest.fixture(scope="session")
def floor_above_the_model(model_dir) -> float:
    """A gate floor between the session model's holdout AUC and 1, so the model falls below it; a skip at AUC 1."""
    auc = json.loads((model_dir / "metrics.json").read_text())["holdout"]["auc"]
    if auc >= 1:
        pytest.skip("the model scores its holdout perfectly (AUC 1): no floor lies above it")
    return (auc + 1) / 2


@pytest.fixture(scope="session")
def second_model_dir(tmp_path_factory, data_files) -> Path:
    """Another version: the same data retrained with seed 1 (treat it as read-only)."""
    from {{ cookiecutter.package_name }}.train import train

    folder, _ = train(*data_files, tmp_path_factory.mktemp("artifacts"), seed=1)
    return folder


@pytest.fixture(scope="session")
def production_registry(tmp_path_factory, model_dir) -> Path:
    """A registry with ``model_dir`` registered and promoted to production, built once per session."""
    registry = Registry(tmp_path_factory.mktemp("registry"))
    registry.promote(registry.register(model_dir, reason="fixture"), "production", reason="fixture")
    return registry.root


@pytest.fixture
def registry(tmp_path, production_registry) -> Registry:
    """This test's own copy of the session registry, free to change."""
    return Registry(shutil.copytree(production_registry, tmp_path / "registry"))


@pytest.fixture
def gate_settings() -> GateSettings:
    """Gate thresholds fixed for the tests, whatever the project was generated with."""
    return GateSettings(min_auc=0.8, max_auc_drop=0.01, confidence=0.95)


@pytest.fixture
def app(registry):
    """The service serving the registry's production model, re-reading the pointer on every request."""
    from {{ cookiecutter.package_name }}.service import create_app

    return create_app(test_config={"REGISTRY": str(registry.root), "RELOAD_INTERVAL": 0})


@pytest.fixture
def client(app):
    """A test client for the app."""
    return app.test_client()


@pytest.fixture(scope="session")
def own_features() -> tuple[Feature, ...]:
    """A different feature list, as a user with their own data would declare it in features.py."""
    return (
        Feature("age", "int", 18, 120, "Customer age in years."),
        Feature("balance", "float", 0.0, 1_000_000.0, "Account balance."),
        Feature("is_member", "bool", description="Member of the loyalty programme."),
    )


@pytest.fixture(scope="session")
def own_model_dir(tmp_path_factory, own_features) -> Path:
    """A model trained on a hand-written CSV of the other feature list (treat it as read-only)."""
    from {{ cookiecutter.package_name }}.train import train

    folder = tmp_path_factory.mktemp("own")
    rng = np.random.default_rng(0)
    for name in ("train", "holdout"):
        age, balance, member = rng.integers(18, 90, 2_000), rng.lognormal(7, 1.5, 2_000), rng.random(2_000) < 0.3
        risk = 1 / (1 + np.exp(-(-3 + 0.04 * (60 - age) - 1.5 * member)))
        label = rng.random(2_000) < risk
        with (folder / f"{name}.csv").open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["is_member", "age", "balance", LABEL])
            writer.writerows(zip(member.astype(int), age, balance.round(2), label.astype(int), strict=True))
    model, _ = train(folder / "train.csv", folder / "holdout.csv", folder / "artifacts", features=own_features)
    return model


@pytest.fixture
def serve():
    """Serve a Flask app on a free 127.0.0.1 port in a thread; return a function giving its base URL."""
    servers = []

    def start(app) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def project(tmp_path, monkeypatch, configured, data_table):
    """A project folder as the working directory: gunicorn.conf.py, the data source kept small, a fixed gate."""
    shutil.copy(Path(__file__).parents[1] / "gunicorn.conf.py", tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        f"[tool.{TABLE}]\ntrain_rows = {configured.train_rows}\nholdout_rows = {configured.holdout_rows}\n"
        f"[tool.{TABLE}.gate]\nmin_auc = 0.8\nmax_auc_drop = 0.01\n{data_table}"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODEL_REGISTRY", raising=False)
    return tmp_path


@pytest.fixture
def exec_calls(monkeypatch):
    """Record the command `serve` would replace the process with, and the environment it would pass on."""
    calls = []
    monkeypatch.setattr("os.execv", lambda path, command: calls.append((command, dict(os.environ))))
    for name in ("MODEL_REGISTRY", "MODEL_STAGE", "PREDICTION_LOG", "MODEL_SHADOW"):  # `serve` sets them here
        monkeypatch.setenv(name, "")  # so that the test's end restores each one, or its absence
        monkeypatch.delenv(name)
    return calls
