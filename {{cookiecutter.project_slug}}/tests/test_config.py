"""Settings: defaults, overrides from pyproject.toml and the environment, clear errors for bad keys."""

import re
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import TABLE, ConfigError, DataSettings, GateSettings, Settings, load_settings

PROJECT_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def write(tmp_path, text):
    """A pyproject.toml holding the given [tool.<package>] content."""
    path = tmp_path / "pyproject.toml"
    path.write_text(text.replace("TABLE", TABLE))
    return path


@pytest.fixture(autouse=True)
def no_registry_override(monkeypatch):
    """Keep a MODEL_REGISTRY from the caller's shell out of these tests."""
    monkeypatch.delenv("MODEL_REGISTRY", raising=False)


def test_without_a_pyproject_the_defaults_apply(tmp_path):
    assert load_settings(tmp_path / "pyproject.toml") == Settings()


def test_the_projects_own_pyproject_loads_and_matches_the_defaults():
    settings = load_settings(PROJECT_PYPROJECT)
    assert settings.gate == GateSettings()
    assert settings.registry == Path("registry")
    assert 0.5 < settings.gate.min_auc < 1 and 0 <= settings.gate.max_auc_drop < 0.5


def test_values_in_pyproject_override_the_defaults(tmp_path):
    path = write(
        tmp_path,
        '[tool.TABLE]\nregistry = "models"\ntrain_rows = 500\nmax_psi = 1\n[tool.TABLE.gate]\nmin_auc = 0.7\n',
    )
    settings = load_settings(path)
    assert (settings.registry, settings.train_rows, settings.max_psi) == (Path("models"), 500, 1.0)
    assert settings.gate == GateSettings(min_auc=0.7)
    assert isinstance(settings.max_psi, float)


def test_model_registry_in_the_environment_overrides_the_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_REGISTRY", "/srv/registry")
    assert load_settings(write(tmp_path, '[tool.TABLE]\nregistry = "models"\n')).registry == Path("/srv/registry")


def test_an_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=f"unknown key 'min_acu' in \\[tool.{TABLE}.gate\\]"):
        load_settings(write(tmp_path, "[tool.TABLE.gate]\nmin_acu = 0.9\n"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('train_rows = "many"', "train_rows must be a int"),
        ("train_rows = true", "train_rows must be a int"),
        ("train_rows = 1.5", "train_rows must be a int"),
        ("registry = 3", "registry must be a path"),
    ],
)
def test_a_value_of_the_wrong_type_is_named(tmp_path, line, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, f"[tool.TABLE]\n{line}\n"))


def test_a_gate_key_that_is_not_a_table_is_named(tmp_path):
    with pytest.raises(ConfigError, match="gate"):
        load_settings(write(tmp_path, "[tool.TABLE]\ngate = 0.9\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tool.TABLE.gate]\nconfidence = 1.5\n", "confidence must be at least 0.5 and below 1, got 1.5"),
        ("[tool.TABLE.gate]\nconfidence = 0\n", "confidence must be at least 0.5"),
        ("[tool.TABLE.gate]\nmax_auc_drop = -0.5\n", "max_auc_drop must be at least 0 and below 0.5"),
        ("[tool.TABLE.gate]\nmin_auc = 0.4\n", "min_auc must be above 0.5 and below 1"),
        ("[tool.TABLE]\nseed = -1\n", "seed must be from 0 to 2\\^32 - 1"),
        ("[tool.TABLE]\ntrain_rows = 5\n", "train_rows must be at least 100"),
        ("[tool.TABLE]\nmax_psi = 0\n", "max_psi must be above 0"),
    ],
    ids=["confidence-above-1", "confidence-0", "negative-drop", "floor-below-chance", "seed", "rows", "psi"],
)
def test_a_value_out_of_its_range_is_named_so_the_gate_cannot_fail_open(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "message"),
    [("this is = = broken\n", "cannot read .*pyproject.toml"), ("[tool]\nTABLE = 5\n", "must be a table")],
    ids=["not-toml", "not-a-table"],
)
def test_a_broken_pyproject_is_one_config_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text))


def test_the_data_source_is_the_synthetic_example_unless_pyproject_names_another(tmp_path):
    assert Settings().data == DataSettings(source="synthetic")
    assert load_settings(write(tmp_path, "[tool.TABLE]\nseed = 1\n")).data.source == "synthetic"


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('source = "csv"\npath = "datasets/mine.csv"', DataSettings("csv", Path("datasets/mine.csv"))),
        (
            'source = "csv"\npath = "mine.csv"\nholdout_fraction = 0.3\nsplit_column = "day"',
            DataSettings("csv", Path("mine.csv"), holdout_fraction=0.3, split_column="day"),
        ),
        (
            'source = "csv-pair"\npath = "train.csv"\nholdout_path = "holdout.csv"',
            DataSettings("csv-pair", Path("train.csv"), Path("holdout.csv")),
        ),
    ],
    ids=["csv", "csv-time-split", "csv-pair"],
)
def test_a_data_source_is_read_from_its_own_table(tmp_path, table, expected):
    assert load_settings(write(tmp_path, f"[tool.TABLE.data]\n{table}\n")).data == expected


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('source = "parquet"', 'source must be one of "synthetic", "csv" or "csv-pair", got \'parquet\''),
        ('source = "csv"', 'source = "csv" needs path = "<a CSV file>"'),
        ('source = "csv"\npath = ""', 'source = "csv" needs path'),
        ('source = "csv-pair"\npath = "train.csv"', 'source = "csv-pair" needs holdout_path'),
        ('source = "csv"\npath = "a.csv"\nholdout_fraction = 0', "holdout_fraction must be above 0 and below 1"),
        ('source = "csv"\npath = "a.csv"\nholdout_fraction = 1', "holdout_fraction must be above 0 and below 1"),
        ('path = "a.csv"', 'path is not read by source = "synthetic"; remove it'),
        ('source = "csv"\npath = "a.csv"\nholdout_path = "b.csv"', 'holdout_path is not read by source = "csv"'),
        ('source = "csv-pair"\npath = "a"\nholdout_path = "b"\nsplit_column = "day"', "split_column is not read"),
        ('source = "csv"\npath = 3', "path must be a path"),
        ('sorce = "csv"', "unknown key 'sorce'"),
    ],
    ids=[
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
        "typo",
    ],
)
def test_a_data_table_that_cannot_work_is_one_config_error_naming_the_key(tmp_path, table, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        load_settings(write(tmp_path, f"[tool.TABLE.data]\n{table}\n"))
    assert f"[tool.{TABLE}.data]" in str(error.value) and "\n" not in str(error.value)
