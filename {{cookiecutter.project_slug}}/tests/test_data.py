"""Data: CSV files read and written losslessly with one clear error per problem, and the configured source's files.

A "csv" source is split the same way every time (stratified, or by time), a "csv-pair" is used as it is, and the
lineage a model records names the files and their sha256.
"""

import csv
import re
import shutil
import sys
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }} import data
from {{ cookiecutter.package_name }}.config import DataSettings, Settings
from {{ cookiecutter.package_name }}.data import DataError, Dataset, read_csv, sha256_of, write_csv
from {{ cookiecutter.package_name }}.features import FEATURES, LABEL

HEADERS = [feature.header for feature in FEATURES]  # the features' columns in CSV files (a header may not be a name)


@pytest.fixture(scope="module")
def sample(data_files) -> Dataset:
    """The first 20 rows of the configured source's holdout."""
    holdout = read_csv(data_files[1])
    return Dataset(holdout.X[:20], holdout.y[:20])


def test_a_dataset_survives_a_csv_round_trip_with_whole_numbers_written_as_such(tmp_path, data_files):
    holdout = read_csv(data_files[1])
    write_csv(tmp_path / "data.csv", holdout)
    again = read_csv(tmp_path / "data.csv")
    assert np.array_equal(again.X, holdout.X) and np.array_equal(again.y, holdout.y)
    with (tmp_path / "data.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    for name in [feature.header for feature in FEATURES if feature.kind != "float"] + [LABEL]:
        assert all(re.fullmatch(r"-?\d+", row[name]) for row in rows), name  # no decimal point
    assert {row[LABEL] for row in rows} <= {"0", "1"}


def test_read_csv_reads_a_spreadsheets_export_columns_found_by_name(tmp_path, sample):
    names = [*HEADERS, LABEL]
    order = [*reversed(names), "note"]  # another order, and a column that is no feature
    lines = [",".join(order)]
    for row in np.column_stack([sample.X, sample.y]).tolist():
        by_name = dict(zip(names, row, strict=True))
        lines.append(",".join([*(str(by_name[name]) for name in order[:-1]), "a comment"]))
    # a byte-order mark, CRLF line ends and blank lines, as spreadsheets write them
    (tmp_path / "export.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join([*lines[:5], "", *lines[5:], "", ""]).encode())
    again = read_csv(tmp_path / "export.csv")
    assert np.array_equal(again.X, sample.X) and np.array_equal(again.y, sample.y)


def cell(column: str, value: str):
    """An edit of a valid CSV's header and rows: the second row's value in ``column`` replaced."""

    def edit(header: list[str], rows: list[list[str]]) -> str:
        rows[1][header.index(column)] = value
        return "\n".join(",".join(row) for row in [header, *rows]) + "\n"

    return edit


def without_column(header: list[str], rows: list[list[str]]) -> str:
    """The CSV without its last feature column."""
    drop = header.index(HEADERS[-1])
    return "\n".join(",".join(row[:drop] + row[drop + 1 :]) for row in [header, *rows]) + "\n"


def bad_files() -> list:
    """(edit, message) for each kind of bad file and each kind of bad value the declared features can hold."""
    first, columns, last = re.escape(HEADERS[0]), len(FEATURES) + 1, re.escape(HEADERS[-1])
    cases = [
        pytest.param(cell(HEADERS[0], "lots"), rf"line 3: expected {columns} numeric values", id="non-numeric"),
        pytest.param(cell(HEADERS[0], "nan"), rf"column {first} holds NaN", id="NaN"),
        pytest.param(cell(HEADERS[0], "inf"), rf"column {first} holds NaN or infinite", id="infinity"),
        pytest.param(cell(LABEL, "2"), rf"column {LABEL} must hold only 0 and 1", id="label-2"),
        pytest.param(cell(LABEL, ""), rf"line 3: expected {columns} numeric values", id="label-blank"),
        pytest.param(cell(LABEL, "nan"), rf"column {LABEL} must hold only 0 and 1", id="label-NaN"),
        pytest.param(without_column, f"missing column.* {last}", id="missing-column"),
        pytest.param(lambda h, r: "\n".join(",".join(x) for x in [h, r[0], r[1][:-1]]), "line 3", id="short-row"),
        pytest.param(lambda h, r: "", "empty", id="empty-file"),
        pytest.param(lambda h, r: ",".join(h) + "\n", "no rows", id="header-only"),
        pytest.param(lambda h, r: None, "cannot read data file .*data.csv", id="no-file"),
    ]
    for feature in FEATURES:
        name, column = feature.header, re.escape(feature.header)
        if feature.kind == "bool":
            cases.append(pytest.param(cell(name, "2"), rf"column {column} must lie in \[0, 1\]", id=f"{name}-2"))
            continue
        # well outside, whatever the bound's size: a float cannot tell 1e20 + 1 from 1e20
        if feature.minimum is not None:
            below = cell(name, str(feature.minimum - abs(feature.minimum) - 1))
            cases.append(pytest.param(below, rf"column {column} must lie in", id=f"{name}-below-minimum"))
        if feature.maximum is not None:
            above = cell(name, str(feature.maximum + abs(feature.maximum) + 1))
            cases.append(pytest.param(above, rf"column {column} must lie in", id=f"{name}-above-maximum"))
        fraction = (feature.minimum or 0) + 0.5
        if feature.kind == "int" and (feature.maximum is None or fraction <= feature.maximum):
            whole = rf"column {column} must hold whole numbers"
            cases.append(pytest.param(cell(name, str(fraction)), whole, id=f"{name}-0.5"))
    return cases


@pytest.mark.parametrize(("edit", "message"), bad_files())
def test_read_csv_refuses_a_bad_file_with_one_error_naming_the_problem(tmp_path, sample, edit, message):
    path = tmp_path / "data.csv"
    write_csv(path, sample)
    header, *rows = [line.split(",") for line in path.read_text().splitlines()]
    text = edit(header, rows)
    path.unlink()
    if text is not None:
        path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_csv(path)


# ---------------------------------------------------------------------------------------------------------------
# the configured source: one CSV split in two, or two CSVs
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def table(data_files) -> tuple[list[str], list[list[str]]]:
    """The configured holdout's header and rows as text, with an ``observed_on`` date column: one labelled table."""
    with data_files[1].open(newline="") as file:
        header, *rows = list(csv.reader(file))
    days = [(date(2024, 1, 1) + timedelta(days=index % 365)).isoformat() for index in range(len(rows))]
    return [*header, "observed_on"], [[*row, day] for row, day in zip(rows, days, strict=True)]


def write_table(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Write a header and rows as CSV."""
    with path.open("w", newline="") as file:
        csv.writer(file).writerows([header, *rows])
    return path


def split(tmp_path: Path, table, week: int | None = None, **settings) -> data.DataFiles:
    """Split the table with a csv source of the given settings, writing under tmp_path."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = write_table(tmp_path / "mine.csv", *table)
    return data.prepare(Settings(data_dir=tmp_path / "data", data=DataSettings("csv", source, **settings)), week)


def rows_of(path: Path) -> list[list[str]]:
    """The data rows of a CSV (header left out)."""
    with path.open(newline="") as file:
        return list(csv.reader(file))[1:]


def test_a_csv_is_split_into_two_files_holding_each_row_once_and_the_fraction_of_each_class(tmp_path, table):
    files = split(tmp_path, table, holdout_fraction=0.3)
    train, holdout = rows_of(files.train), rows_of(files.holdout)
    assert sorted(train + holdout) == sorted(table[1])
    with files.train.open(newline="") as file:
        assert next(csv.reader(file)) == table[0]
    assert read_csv(files.train).y.size and read_csv(files.holdout).y.size
    label = table[0].index(LABEL)
    for value in (0, 1):
        count = sum(float(row[label]) == value for row in table[1])
        held = sum(float(row[label]) == value for row in holdout)
        assert held == min(max(round(0.3 * count), 1), count - 1), value
    header, rows = table
    first = {value: [row for row in rows if float(row[label]) == value][:2] for value in (0, 1)}
    tiny = split(tmp_path / "tiny", (header, first[0] + first[1]), holdout_fraction=0.9)
    assert len(rows_of(tiny.train)) == len(rows_of(tiny.holdout)) == 2  # one row or more of each class on each side
    mine = tmp_path / "mine.csv"
    assert files.description == str(mine)
    assert files.lineage == {
        "source": "csv",
        "path": str(mine),
        "sha256": sha256_of(mine),
        "holdout_fraction": 0.3,
        "split_column": None,
    }


def test_the_split_is_the_same_whatever_the_seed_the_order_of_the_rows_and_the_folder(tmp_path, table):
    first = rows_of(split(tmp_path / "first", table).holdout)
    header, rows = table
    shuffled = split(tmp_path / "shuffled", (header, rows[::-1]))
    assert sorted(rows_of(shuffled.holdout)) == sorted(first)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_table(elsewhere / "mine.csv", *table)
    settings = Settings(seed=7, data_dir=Path("data"), data=DataSettings("csv", Path("mine.csv")))
    files = data.prepare(settings, root=elsewhere)  # relative paths start at the root
    assert files.holdout == elsewhere / "data" / "split" / "holdout.csv" and files.description == "mine.csv"
    assert rows_of(files.holdout) == first


@pytest.mark.parametrize(("column", "key"), [("observed_on", str), ("n", int)], ids=["ISO-dates", "numbers"])
def test_a_time_split_holds_out_the_latest_rows(tmp_path, table, column, key):
    header, rows = table
    numbered = ([*header, "n"], [[*row, str(index)] for index, row in enumerate(rows)])  # "10" is later than "9"
    files = split(tmp_path, numbered, split_column=column, holdout_fraction=0.2)
    at = numbered[0].index(column)
    train, holdout = ([key(row[at]) for row in rows_of(path)] for path in (files.train, files.holdout))
    assert max(train) < min(holdout)
    assert 0.15 < len(holdout) / len(rows) < 0.3
    assert files.lineage["split_column"] == column


def test_two_csvs_are_used_as_they_are_and_the_lineage_holds_each_files_sha256(tmp_path, data_files):
    train, holdout = (Path(shutil.copy(path, tmp_path)) for path in data_files)
    files = data.prepare(Settings(data=DataSettings("csv-pair", train, holdout)))
    assert (files.train, files.holdout) == (train, holdout)
    assert files.lineage["sha256"] == sha256_of(train) and len(sha256_of(train)) == 64
    assert files.lineage["holdout_sha256"] == sha256_of(holdout)
    text = holdout.read_bytes()
    holdout.write_bytes(text[:-2] + bytes([text[-2] ^ 1]) + text[-1:])  # one byte changed: the last label flipped
    again = data.prepare(Settings(data=DataSettings("csv-pair", train, holdout)))
    assert again.lineage["holdout_sha256"] != files.lineage["holdout_sha256"]
    assert again.lineage["sha256"] == files.lineage["sha256"]
    holdout.unlink()
    with pytest.raises(DataError, match=f"{re.escape(holdout.name)} does not exist"):
        data.prepare(Settings(data=DataSettings("csv-pair", train, holdout)))


def change(table, column, value, row=1):
    """The table with one cell replaced."""
    header, rows = table
    rows = [list(r) for r in rows]
    rows[row][header.index(column)] = value
    return header, rows


@pytest.mark.parametrize(
    ("edit", "settings", "message"),
    [
        (lambda t: change(t, LABEL, "yes"), {}, rf"line 3: {LABEL} must be 0 or 1, got 'yes'"),
        (lambda t: change(t, "observed_on", ""), {"split_column": "observed_on"}, "line 3: observed_on is empty"),
        (lambda t: t, {"split_column": "week"}, "has no column week"),
        (
            lambda t: (t[0], [[*r[:-1], "2024-01-01"] for r in t[1]]),
            {"split_column": "observed_on"},
            "no rows to train on",
        ),
        (lambda t: (t[0], [r for r in t[1] if float(r[t[0].index(LABEL)]) == 0]), {}, f"{LABEL} = 1 on 0 row"),
        (lambda t: ([h if h != LABEL else f"{LABEL}_renamed" for h in t[0]], t[1]), {}, f"no label column {LABEL}"),
        (lambda t: t, {"week": 1}, 'a week of data needs source = "synthetic"'),
    ],
    ids=[
        "label-not-0-or-1",
        "empty-split-value",
        "unknown-split-column",
        "one-day-only",
        "one-class",
        "no-label",
        "week",
    ],
)
def test_a_csv_that_cannot_be_split_is_one_data_error_naming_the_problem(tmp_path, table, edit, settings, message):
    with pytest.raises(DataError, match=message):
        split(tmp_path, edit(table), **settings)


def test_the_synthetic_source_without_its_module_says_what_to_set(tmp_path, monkeypatch):
    package = sys.modules[data.__package__]
    monkeypatch.delattr(package, "synthetic", raising=False)
    monkeypatch.setitem(sys.modules, f"{data.__package__}.synthetic", None)  # as if synthetic.py were deleted
    with pytest.raises(DataError, match='source = "synthetic" needs synthetic.py.*set source in'):
        data.prepare(replace(Settings(), data_dir=tmp_path))
