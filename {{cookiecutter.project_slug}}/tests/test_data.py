"""CSV input and output: a lossless round trip, columns found by name, and one clear error per kind of bad value."""

import csv
import re

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.data import DataError, Dataset, read_csv, sha256_of, write_csv
from {{ cookiecutter.package_name }}.features import FEATURES, LABEL

HEADERS = [feature.header for feature in FEATURES]  # the features' columns in CSV files (a header may not be a name)


@pytest.fixture(scope="module")
def sample(data_files) -> Dataset:
    """The first 50 rows of the configured source's holdout."""
    data = read_csv(data_files[1])
    return Dataset(data.X[:50], data.y[:50])


def test_a_dataset_survives_a_csv_round_trip(tmp_path, data_files):
    data = read_csv(data_files[1])
    write_csv(tmp_path / "data.csv", data)
    again = read_csv(tmp_path / "data.csv")
    assert np.array_equal(again.X, data.X)
    assert np.array_equal(again.y, data.y)


def test_read_csv_finds_columns_by_name_whatever_their_order(tmp_path, sample):
    names = [*HEADERS, LABEL]
    order = ["note", *reversed(names)]
    with (tmp_path / "shuffled.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(order)
        for row in np.column_stack([sample.X, sample.y]).tolist():
            by_name = dict(zip(names, row, strict=True))
            writer.writerow(["a comment", *(by_name[name] for name in order[1:])])
    again = read_csv(tmp_path / "shuffled.csv")
    assert np.array_equal(again.X, sample.X)
    assert np.array_equal(again.y, sample.y)


def test_write_csv_writes_whole_numbers_without_a_decimal_point(tmp_path, sample):
    write_csv(tmp_path / "data.csv", sample)
    with (tmp_path / "data.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    whole = [feature.header for feature in FEATURES if feature.kind != "float"] + [LABEL]
    for name in whole:
        assert all(re.fullmatch(r"-?\d+", row[name]) for row in rows), name
    assert {row[LABEL] for row in rows} <= {"0", "1"}


def test_sha256_of_changes_when_one_byte_changes(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"abc")
    before = sha256_of(path)
    path.write_bytes(b"abd")
    assert sha256_of(path) != before
    assert len(before) == 64


@pytest.fixture
def good_csv(tmp_path, data_files):
    """A small valid CSV of the declared columns; returns its path, header and rows as lists of strings."""
    path = tmp_path / "data.csv"
    data = read_csv(data_files[1])
    write_csv(path, Dataset(data.X[:20], data.y[:20]))
    header, *rows = [line.split(",") for line in path.read_text().splitlines()]
    return path, header, rows


def bad_values() -> list:
    """(column, value, message) for each kind of bad value the declared features can hold."""
    first, columns = HEADERS[0], len(FEATURES) + 1
    cases = [
        pytest.param(first, "lots", rf"line 3: expected {columns} numeric values", id="non-numeric"),
        pytest.param(first, "nan", rf"column {re.escape(first)} holds NaN", id="NaN"),
        pytest.param(first, "inf", rf"column {re.escape(first)} holds NaN or infinite", id="infinity"),
        pytest.param(LABEL, "2", rf"column {LABEL} must hold only 0 and 1", id="label-2"),
        pytest.param(LABEL, "", rf"line 3: expected {columns} numeric values", id="label-blank"),
        pytest.param(LABEL, "nan", rf"column {LABEL} must hold only 0 and 1", id="label-NaN"),
    ]
    for feature in FEATURES:
        name, column = feature.header, re.escape(feature.header)
        if feature.kind == "bool":
            cases.append(pytest.param(name, "2", rf"column {column} must lie in \[0, 1\]", id=f"{name}-2"))
            continue
        # well outside, whatever the bound's size: a float cannot tell 1e20 + 1 from 1e20
        if feature.minimum is not None:
            below = str(feature.minimum - abs(feature.minimum) - 1)
            cases.append(pytest.param(name, below, rf"column {column} must lie in", id=f"{name}-below-minimum"))
        if feature.maximum is not None:
            above = str(feature.maximum + abs(feature.maximum) + 1)
            cases.append(pytest.param(name, above, rf"column {column} must lie in", id=f"{name}-above-maximum"))
        fraction = (feature.minimum or 0) + 0.5
        if feature.kind == "int" and (feature.maximum is None or fraction <= feature.maximum):
            whole = rf"column {column} must hold whole numbers"
            cases.append(pytest.param(name, str(fraction), whole, id=f"{name}-0.5"))
    return cases


@pytest.mark.parametrize(("column", "value", "message"), bad_values())
def test_read_csv_names_the_problem(good_csv, column, value, message):
    path, header, rows = good_csv
    rows[1][header.index(column)] = value
    path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n")
    with pytest.raises(DataError, match=message):
        read_csv(path)


def test_read_csv_names_a_missing_column(good_csv):
    path, header, rows = good_csv
    dropped = HEADERS[-1]
    drop = header.index(dropped)
    path.write_text("\n".join(",".join(r[:drop] + r[drop + 1 :]) for r in [header, *rows]) + "\n")
    with pytest.raises(DataError, match=f"missing column.* {re.escape(dropped)}"):
        read_csv(path)


def test_read_csv_names_a_short_row(good_csv):
    path, header, rows = good_csv
    path.write_text("\n".join(",".join(row) for row in [header, rows[0], rows[1][:-1]]) + "\n")
    with pytest.raises(DataError, match="line 3"):
        read_csv(path)


def test_read_csv_refuses_an_empty_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_csv(tmp_path / "empty.csv")


def test_read_csv_refuses_a_header_without_rows(tmp_path):
    (tmp_path / "header.csv").write_text(",".join([*HEADERS, LABEL]) + "\n")
    with pytest.raises(DataError, match="no rows"):
        read_csv(tmp_path / "header.csv")


def test_read_csv_names_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read data file .*missing.csv"):
        read_csv(tmp_path / "missing.csv")


def test_read_csv_takes_a_spreadsheets_byte_order_mark_and_blank_lines(good_csv):
    path, header, rows = good_csv
    expected = read_csv(path)
    lines = [",".join(row) for row in [header, *rows]]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([*lines[:5], "", *lines[5:], "", ""]).encode())
    data = read_csv(path)
    assert (data.X == expected.X).all() and (data.y == expected.y).all()
