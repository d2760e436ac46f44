"""Settings: defaults chosen when the project was generated, overridden in pyproject.toml."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TABLE = "{{ cookiecutter.package_name }}"
PROG = "{{ cookiecutter.project_slug }}"  # the command's name, in its messages


class ConfigError(ValueError):
    """The [tool.<package>] table of pyproject.toml holds an unknown key or a wrong value."""


@dataclass(frozen=True)
class GateSettings:
    """Thresholds of the AUC gate."""

    min_auc: float = {{ cookiecutter.min_auc }}
    max_auc_drop: float = {{ cookiecutter.max_auc_drop }}
    confidence: float = 0.95


@dataclass(frozen=True)
class DataSettings:
    """Where the training and holdout data come from: the synthetic example, one CSV split in two, or two CSVs."""

    source: str = "synthetic"
    path: Path = Path()
    holdout_path: Path = Path()
    holdout_fraction: float = 0.25
    split_column: str = ""


@dataclass(frozen=True)
class Settings:
    """Where things live and how big the synthetic data sets are."""

    registry: Path = Path("registry")
    data_dir: Path = Path("data")
    artifacts: Path = Path("artifacts")
    seed: int = 0
    train_rows: int = 20_000
    holdout_rows: int = 20_000
    max_psi: float = 0.2
    predictions: Path = Path("predictions")  # this and the next three: the production loop's (production_loop=true)
    feedback: Path = Path("feedback")
    guard_min_rows: int = 5_000
    guard_watch_days: int = 30
    gate: GateSettings = field(default_factory=GateSettings)
    data: DataSettings = field(default_factory=DataSettings)


# the [tool.<package>.data] keys each source reads, besides `source`
SOURCES = {"synthetic": (), "csv": ("path", "holdout_fraction", "split_column"), "csv-pair": ("path", "holdout_path")}

# the values each setting may take, checked after its type: a gate that accepts any confidence fails open
LIMITS = {
    "min_auc": (lambda v: 0.5 < v < 1, "above 0.5 and below 1"),
    "max_auc_drop": (lambda v: 0 <= v < 0.5, "at least 0 and below 0.5"),
    "confidence": (lambda v: 0.5 <= v < 1, "at least 0.5 and below 1"),
    "max_psi": (lambda v: v > 0, "above 0"),
    "seed": (lambda v: 0 <= v < 2**32, "from 0 to 2^32 - 1"),
    "train_rows": (lambda v: v >= 100, "at least 100"),
    "holdout_rows": (lambda v: v >= 100, "at least 100"),
    "source": (lambda v: v in SOURCES, 'one of "synthetic", "csv" or "csv-pair"'),
    "holdout_fraction": (lambda v: 0 < v < 1, "above 0 and below 1"),
    "guard_min_rows": (lambda v: v >= 100, "at least 100"),
    "guard_watch_days": (lambda v: 0 <= v <= 3650, "from 0 to 3650"),
}


def load_settings(pyproject: Path = Path("pyproject.toml")) -> Settings:
    """Read [tool.<package>] from pyproject.toml (if present); MODEL_REGISTRY overrides the registry."""
    tool: object = {}
    if pyproject.is_file():
        try:
            tool = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {})
        except (OSError, ValueError) as error:  # ValueError: TOMLDecodeError, or bytes that are not UTF-8
            raise ConfigError(f"cannot read {pyproject}: {error}") from None
    settings = _build(Settings, tool.get(TABLE, {}) if isinstance(tool, dict) else tool, f"tool.{TABLE}")
    registry = os.environ.get("MODEL_REGISTRY")
    return replace(settings, registry=Path(registry)) if registry else settings


def _build(cls: type, table: object, where: str):
    """Instantiate a settings class from a TOML table, converting and checking each value and sub-table."""
    if not isinstance(table, dict):
        raise ConfigError(f"[{where}] must be a table of settings, got {table!r}")
    defaults, known, values = cls(), [f.name for f in fields(cls)], {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"unknown key {key!r} in [{where}]; known keys: {', '.join(known)}")
        default = getattr(defaults, key)
        if is_dataclass(default):  # the gate and data tables
            value = _build(type(default), value, f"{where}.{key}")
        elif (isinstance(default, Path) and type(value) is str) or (isinstance(default, float) and type(value) is int):
            value = type(default)(value)  # text is a path, and `max_psi = 1` means 1.0 (`true` is no number)
        if type(value) is not type(default):
            kind = "path" if isinstance(default, Path) else type(default).__name__
            raise ConfigError(f"[{where}] {key} must be a {kind}, got {value!r}")
        if key in LIMITS and not LIMITS[key][0](value):
            raise ConfigError(f"[{where}] {key} must be {LIMITS[key][1]}, got {value!r}")
        values[key] = value
    settings = cls(**values)
    if cls is DataSettings:  # refuse a file its source needs left out, or a key its source would not read
        unused = sorted(set(table) - {"source", *SOURCES[settings.source]})
        if unused:
            raise ConfigError(f'[{where}] {unused[0]} is not read by source = "{settings.source}"; remove it')
        for key in SOURCES[settings.source]:
            if getattr(settings, key) == Path():
                raise ConfigError(f'[{where}] source = "{settings.source}" needs {key} = "<a CSV file>"')
    return settings


def layers() -> list:
    """The modules the package's entry points of group `<package>.layers` name (the production loop, if installed)."""
    from importlib.metadata import entry_points

    return [entry_point.load() for entry_point in entry_points(group=f"{TABLE}.layers")]
