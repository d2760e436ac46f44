"""Settings: defaults, overrides from pyproject.toml and the environment, one clear error for each bad key."""

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import TABLE, ConfigError, DataSettings, GateSettings, Settings, load_settings

PROJECT_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
DATA = "[tool.TABLE.data]\n"


@pytest.fixture(autouse=True)
def no_registry_override(monkeypatch):
    """Keep a MODEL_REGISTRY from the caller's shell out of these tests."""
    monkeypatch.delenv("MODEL_REGISTRY", raising=False)


def test_the_projects_own_pyproject_loads_and_matches_the_defaults(tmp_path):
    settings = load_settings(PROJECT_PYPROJECT)
    assert settings.gate == GateSettings()
    assert settings.registry == Path("registry")
    assert 0.5 < settings.gate.min_auc < 1 and 0 <= settings.gate.max_auc_drop < 0.5
    assert load_settings(tmp_path / "pyproject.toml") == Settings()  # no pyproject.toml: the defaults
    assert Settings().data == DataSettings(source="synthetic")


@pytest.mark.parametrize(
    ("text", "environment", "expected"),
    [
        (
            '[tool.TABLE]\nregistry = "models"\ntrain_rows = 500\nmax_psi = 1\n[tool.TABLE.gate]\nmin_auc = 0.7\n',
            "",
            Settings(registry=Path("models"), train_rows=500, max_psi=1.0, gate=GateSettings(min_auc=0.7)),
        ),
        ('[tool.TABLE]\nregistry = "models"\n', "/srv/registry", Settings(registry=Path("/srv/registry"))),
        ("[tool.TABLE]\nseed = 1\n", "", Settings(seed=1, data=DataSettings("synthetic"))),
        (
            '[tool.TABLE.data]\nsource = "csv"\npath = "datasets/mine.csv"\n',
            "",
            Settings(data=DataSettings("csv", Path("datasets/mine.csv"))),
        ),
        (
            '[tool.TABLE.data]\nsource = "csv"\npath = "mine.csv"\nholdout_fraction = 0.3\nsplit_column = "day"\n',
            "",
            Settings(data=DataSettings("csv", Path("mine.csv"), holdout_fraction=0.3, split_column="day")),
        ),
        (
            '[tool.TABLE.data]\nsource = "csv-pair"\npath = "train.csv"\nholdout_path = "holdout.csv"\n',
            "",
            Settings(data=DataSettings("csv-pair", Path("train.csv"), Path("holdout.csv"))),
        ),
    ],
    ids=["values", "MODEL_REGISTRY", "synthetic-by-default", "csv", "csv-time-split", "csv-pair"],
)
def test_pyproject_and_model_registry_override_the_defaults(tmp_path, monkeypatch, text, environment, expected):
    path = tmp_path / "pyproject.toml"
    path.write_text(text.replace("TABLE", TABLE))
    if environment:
        monkeypatch.setenv("MODEL_REGISTRY", environment)
    settings = load_settings(path)
    assert settings == expected
    assert isinstance(settings.max_psi, float)  # `max_psi = 1` is read as 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # the file and the tables
        ("this is = = broken\n", "cannot read PYPROJECT: "),
        ("[tool]\nTABLE = 5\n", "[tool.TABLE] must be a table of settings, got 5"),
        ("[tool.TABLE]\ngate = 0.9\n", "[tool.TABLE.gate] must be a table of settings, got 0.9"),
        ("[tool.TABLE.gate]\nmin_acu = 0.9\n", "unknown key 'min_acu' in [tool.TABLE.gate]; known keys: min_auc"),
        # types
        ('[tool.TABLE]\ntrain_rows = "many"\n', "[tool.TABLE] train_rows must be a int, got 'many'"),
        ("[tool.TABLE]\ntrain_rows = true\n", "train_rows must be a int, got True"),
        ("[tool.TABLE]\ntrain_rows = 1.5\n", "train_rows must be a int, got 1.5"),
        ("[tool.TABLE]\nregistry = 3\n", "registry must be a path, got 3"),
        ("[tool.TABLE]\nmax_psi = true\n", "max_psi must be a float, got True"),
        # ranges: a gate that accepts any value fails open
        ("[tool.TABLE.gate]\nconfidence = 1.5\n", "confidence must be at least 0.5 and below 1, got 1.5"),
        ("[tool.TABLE.gate]\nconfidence = 0\n", "confidence must be at least 0.5"),
        ("[tool.TABLE.gate]\nmax_auc_drop = -0.5\n", "max_auc_drop must be at least 0 and below 0.5"),
        ("[tool.TABLE.gate]\nmin_auc = 0.4\n", "[tool.TABLE.gate] min_auc must be above 0.5 and below 1"),
        ("[tool.TABLE]\nseed = -1\n", "seed must be from 0 to 2^32 - 1"),
        ("[tool.TABLE]\ntrain_rows = 5\n", "train_rows must be at least 100"),
        ("[tool.TABLE]\nmax_psi = 0\n", "max_psi must be above 0"),
        # the data table: each message names it
        (DATA + 'source = "parquet"', '[tool.TABLE.data] source must be one of "synthetic", "csv" or "csv-pair"'),
        (DATA + 'source = "csv"', '[tool.TABLE.data] source = "csv" needs path = "<a CSV file>"'),
        (DATA + 'source = "csv"\npath = ""', '[tool.TABLE.data] source = "csv" needs path'),
        (DATA + 'source = "csv-pair"\npath = "a"', '[tool.TABLE.data] source = "csv-pair" needs holdout_path'),
        (
            DATA + 'source = "csv"\npath = "a"\nholdout_fraction = 0',
            "[tool.TABLE.data] holdout_fraction must be above 0",
        ),
        (DATA + 'source = "csv"\npath = "a"\nholdout_fraction = 1', "holdout_fraction must be above 0 and below 1"),
        (DATA + 'path = "a.csv"', '[tool.TABLE.data] path is not read by source = "synthetic"; remove it'),
        (DATA + 'source = "csv"\npath = "a"\nholdout_path = "b"', "[tool.TABLE.data] holdout_path is not read by"),
        (DATA + 'source = "csv-pair"\npath = "a"\nholdout_path = "b"\nsplit_column = "d"', "split_column is not read"),
        (DATA + 'source = "csv"\npath = 3', "[tool.TABLE.data] path must be a path"),
        (DATA + 'sorce = "csv"', "unknown key 'sorce' in [tool.TABLE.data]"),
    ],
    ids=[
        "not-toml",
        "not-a-table",
        "gate-not-a-table",
        "unknown-key",
        "text-for-int",
        "bool-for-int",
        "float-for-int",
        "int-for-path",
        "bool-for-float",
        "confidence-above-1",
        "confidence-0",
        "negative-drop",
        "floor-below-chance",
        "seed",
        "rows",
        "psi",
        "unknown-source",
        "csv-without-path",
        "csv-empty-path",
        "pair-without-holdout",
        "fraction-0",
        "fraction-1",
        "synthetic-with-path",
        "csv-with-holdout-path",
        "pair-with-split-column",
        "path-not-text",
        "data-typo",
    ],
)
def test_a_setting_that_cannot_work_is_one_config_error_naming_it(tmp_path, text, message):
    path = tmp_path / "pyproject.toml"
    path.write_text(text.replace("TABLE", TABLE))
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert message.replace("TABLE", TABLE).replace("PYPROJECT", str(path)) in str(error.value)
    assert "\n" not in str(error.value)
