"""`declare CSV --label COLUMN`: the LABEL and FEATURES declaration of features.py, written from a labelled CSV."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from .data import DataError, Rows, read_table
from .features import Feature

MARGIN = 0.1  # of the observed span, on each side
MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}
LINE_LENGTH = 120  # ruff's, in pyproject.toml: the written lines must pass `ruff format --check`
DECLARATION = re.compile(r"^LABEL = .*?^FEATURES: .*?^\)\n", re.M | re.S)


def declare(path: Path, label: str, ignore: tuple[str, ...] = ()) -> tuple[Feature, ...]:
    """The features of a labelled CSV: every column except the label and ``ignore``; DataError names a bad column."""
    header, rows = read_table(path)
    repeated = next((name for name in header if header.count(name) > 1), None)
    if repeated is not None:
        raise DataError(f"{path}: column {repeated!r} appears twice in the header")
    for name in [label, *ignore]:
        if name not in header:
            raise DataError(f"{path} has no column {name!r}; its columns: {', '.join(header)}")
    labels = _numbers(path, header, rows, label, hint="it must hold 0 and 1")
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"{path}: label column {label} must hold only 0 and 1")
    if len(np.unique(labels)) < 2:
        raise DataError(f"{path}: label column {label} holds only {int(labels[0])}; a model needs rows of 0 and 1")
    columns = [name for name in header if name != label and name not in ignore]
    if not columns:
        raise DataError(f"{path} has no feature column besides the label {label}")
    hint = "encode it as numbers or --ignore it"
    named = zip(field_names(columns), columns, strict=True)
    return tuple(_feature(name, column, _numbers(path, header, rows, column, hint), path) for name, column in named)


def warnings(path: Path, features: tuple[Feature, ...]) -> list[str]:
    """What the reader should check in a declaration: constant columns, 0/1 columns and renamed headers."""
    header, rows = read_table(path)
    notes = []
    for feature in features:
        values = _numbers(path, header, rows, feature.header, hint="")
        if values.min() == values.max():
            notes.append(f"column {feature.header} holds only {values[0]:g}: it cannot help the model; --ignore it")
        elif feature.kind == "bool":
            notes.append(
                f"column {feature.header} holds only 0 and 1, so it is declared bool (true/false in the API); "
                'if it can hold other values, declare it "int" with its range'
            )
        if feature.column is not None:
            notes.append(f"column {feature.column!r} is the API field {feature.name!r} (the CSV keeps its header)")
    return notes


def field_names(columns: list[str]) -> list[str]:
    """An API field name for each column: the header itself when it can be one, else one like it (`a/b` -> `a_b`)."""
    names: list[str] = []
    for column in columns:
        name = column if _is_field(column) else re.sub(r"\W+", "_", column).strip("_") or "column"
        if not _is_field(name):
            name = f"col_{name}"
        while name in names or (name != column and name in columns):
            name += "_"
        names.append(name)
    return names


def _is_field(name: str) -> bool:
    """Whether ``name`` can be a field of the API's request model as it is."""
    return name.isidentifier() and name.isascii() and not name.startswith("_") and not hasattr(BaseModel, name)


def render(features: tuple[Feature, ...], label: str) -> str:
    """The LABEL and FEATURES lines of features.py, laid out as `ruff format` would."""
    calls = [line for feature in features for line in _call(feature)]
    return "\n".join([f"LABEL = {json.dumps(label)}", "", "FEATURES: tuple[Feature, ...] = (", *calls, ")"]) + "\n"


def write(features_py: Path, declaration: str) -> None:
    """Replace the LABEL and FEATURES declaration of features.py (everything else in the file stays)."""
    text = features_py.read_text()
    if len(DECLARATION.findall(text)) != 1:
        raise DataError(f"{features_py}: cannot find one `LABEL = ...` followed by `FEATURES: ... = (...)` to replace")
    features_py.write_text(DECLARATION.sub(lambda _: declaration, text))


def _numbers(path: Path, header: list[str], rows: Rows, name: str, hint: str) -> np.ndarray:
    """One column as finite numbers, or a DataError naming the column and the first bad line (then ``hint``)."""
    column, values = header.index(name), []
    for line, row in rows:
        text = row[column].strip() if column < len(row) else ""
        if text.lower() in MISSING:
            raise DataError(f"{path}, line {line}: column {name} has a missing value; fill or drop such rows")
        try:
            value = float(text)
        except ValueError:
            raise DataError(f"{path}, line {line}: column {name} holds {text!r}, not a number; {hint}") from None
        if not math.isfinite(value):
            raise DataError(f"{path}, line {line}: column {name} holds {text!r}; use finite numbers")
        values.append(value)
    return np.array(values)


def _feature(name: str, column: str, values: np.ndarray, source: Path) -> Feature:
    """The feature a column supports: bool (only 0 and 1), int (whole numbers, `127.0` too) or float, and its range."""
    # the observed range widened by MARGIN of its span (never below 0 if never negative) and rounded outward:
    # new rows a little beyond the training data are still accepted
    description = f"Column {column} of {source.name}."
    column_or_none = None if column == name else column
    if np.isin(values, (0, 1)).all():
        return Feature(name, "bool", description=description, column=column_or_none)
    low, high = float(values.min()), float(values.max())
    margin = MARGIN * (high - low) or MARGIN * abs(high) or 1.0
    low, high = max(low - margin, 0.0 if low >= 0 else -math.inf), high + margin
    if (values == np.round(values)).all():
        return Feature(name, "int", math.floor(low), math.ceil(high), description, column_or_none)
    exponent = math.floor(math.log10(margin))
    step = 10.0**exponent
    # rounded outward to whole steps; round() first, so that 0.8 / 0.01 = 80.00000000000001 is 80 steps, not 81
    minimum, maximum = math.floor(round(low / step, 6)) * step, math.ceil(round(high / step, 6)) * step
    digits = max(0, -exponent)
    return Feature(name, "float", round(minimum, digits), round(maximum, digits), description, column_or_none)


def _call(feature: Feature) -> list[str]:
    """One ``Feature(...)`` line of the declaration, split as ruff splits a call too long for one line."""
    args = [json.dumps(feature.name), json.dumps(feature.kind)]
    if feature.kind == "bool":
        args.append(f"description={json.dumps(feature.description)}")
    else:
        args += [repr(feature.minimum), repr(feature.maximum), json.dumps(feature.description)]
    if feature.column is not None:
        args.append(f"column={json.dumps(feature.column)}")
    joined = ", ".join(args)
    for lines in ([f"    Feature({joined}),"], ["    Feature(", f"        {joined}", "    ),"]):  # the first that fits
        if all(len(line) <= LINE_LENGTH for line in lines):
            return lines
    return ["    Feature(", *(f"        {arg}," for arg in args), "    ),"]
