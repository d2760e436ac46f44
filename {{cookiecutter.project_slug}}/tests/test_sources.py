"""Data sources: one CSV split the same way every time (stratified, or by time), two CSVs as given, clear errors."""

import csv
import sys
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import data as sources
from {{ cookiecutter.package_name }}.config import DataSettings, Settings
from {{ cookiecutter.package_name }}.data import DataError, read_csv, sha256_of
from {{ cookiecutter.package_name }}.features import LABEL


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


def split(tmp_path, table, **data) -> sources.DataFiles:
    """Split the table with a csv source of the given settings, writing under tmp_path."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = write_table(tmp_path / "mine.csv", *table)
    settings = Settings(data_dir=tmp_path / "data", data=DataSettings("csv", source, **data))
    return sources.prepare(settings)


def rows_of(path: Path) -> list[list[str]]:
    """The data rows of a CSV (header left out)."""
    with path.open(newline="") as file:
        return list(csv.reader(file))[1:]


def test_a_csv_is_split_into_two_files_that_hold_every_row_once(tmp_path, table):
    files = split(tmp_path, table)
    train, holdout = rows_of(files.train), rows_of(files.holdout)
    assert sorted(train + holdout) == sorted(table[1])
    with files.train.open(newline="") as file:
        assert next(csv.reader(file)) == table[0]
    assert read_csv(files.train).y.size and read_csv(files.holdout).y.size


def test_the_stratified_split_holds_out_the_fraction_of_each_class(tmp_path, table):
    files = split(tmp_path, table, holdout_fraction=0.3)
    label = table[0].index(LABEL)
    for value in (0, 1):
        count = sum(float(row[label]) == value for row in table[1])
        held = sum(float(row[label]) == value for row in rows_of(files.holdout))
        assert held == min(max(round(0.3 * count), 1), count - 1), value


def test_the_stratified_split_is_the_same_whatever_the_seed_and_the_order_of_the_rows(tmp_path, table):
    first = rows_of(split(tmp_path / "first", table).holdout)
    settings = Settings(seed=7, data_dir=tmp_path / "again", data=DataSettings("csv", tmp_path / "first" / "mine.csv"))
    assert rows_of(sources.prepare(settings).holdout) == first
    header, rows = table
    shuffled = split(tmp_path / "shuffled", (header, rows[::-1]))
    assert sorted(rows_of(shuffled.holdout)) == sorted(first)


def test_a_time_split_holds_out_the_latest_rows(tmp_path, table):
    files = split(tmp_path, table, split_column="observed_on", holdout_fraction=0.2)
    day = table[0].index("observed_on")
    train_days, holdout_days = ({row[day] for row in rows_of(path)} for path in (files.train, files.holdout))
    assert max(train_days) < min(holdout_days)
    assert 0.15 < len(rows_of(files.holdout)) / len(table[1]) < 0.3
    assert files.lineage["split_column"] == "observed_on"


def test_a_time_split_orders_numbers_as_numbers(tmp_path, table):
    header, rows = table
    numbered = ([*header, "n"], [[*row, str(index)] for index, row in enumerate(rows)])
    files = split(tmp_path, numbered, split_column="n", holdout_fraction=0.25)
    held = sorted(int(row[-1]) for row in rows_of(files.holdout))
    assert held == list(range(len(rows) - len(held), len(rows)))  # "10" is later than "9"


def test_the_lineage_records_the_original_files_sha256(tmp_path, table):
    files = split(tmp_path, table)
    assert files.lineage == {
        "source": "csv",
        "path": str(tmp_path / "mine.csv"),
        "sha256": sha256_of(tmp_path / "mine.csv"),
        "holdout_fraction": 0.25,
        "split_column": None,
    }
    assert files.description == str(tmp_path / "mine.csv")


def test_two_csvs_are_used_as_they_are(tmp_path, data_files):
    settings = Settings(data=DataSettings("csv-pair", data_files[0], data_files[1]))
    files = sources.prepare(settings)
    assert (files.train, files.holdout) == data_files
    assert files.lineage["sha256"] == sha256_of(data_files[0])
    assert files.lineage["holdout_sha256"] == sha256_of(data_files[1])


def test_relative_paths_start_at_the_given_root(tmp_path, table):
    write_table(tmp_path / "mine.csv", *table)
    settings = Settings(data_dir=Path("data"), data=DataSettings("csv", Path("mine.csv")))
    files = sources.prepare(settings, root=tmp_path)
    assert files.holdout == tmp_path / "data" / "split" / "holdout.csv" and files.holdout.is_file()
    assert files.description == "mine.csv"


def change(table, column, value, row=1):
    """The table with one cell replaced."""
    header, rows = table
    rows = [list(r) for r in rows]
    rows[row][header.index(column)] = value
    return header, rows


@pytest.mark.parametrize(
    ("edit", "data", "message"),
    [
        (lambda t: change(t, LABEL, "yes"), {}, rf"line 3: {LABEL} must be 0 or 1, got 'yes'"),
        (lambda t: change(t, "observed_on", ""), {"split_column": "observed_on"}, "line 3: observed_on is empty"),
        (lambda t: t, {"split_column": "week"}, "has no column week"),
        (lambda t: (t[0], [[*r[:-1], "2024-01-01"] for r in t[1]]), {"split_column": "observed_on"}, "no rows to"),
        (lambda t: (t[0], [r for r in t[1] if float(r[t[0].index(LABEL)]) == 0]), {}, f"{LABEL} = 1 on 0 row"),
        (lambda t: ([h if h != LABEL else f"{LABEL}_renamed" for h in t[0]], t[1]), {}, f"no label column {LABEL}"),
    ],
    ids=["label-not-0-or-1", "empty-split-value", "unknown-split-column", "one-day-only", "one-class", "no-label"],
)
def test_a_csv_that_cannot_be_split_is_one_data_error_naming_the_problem(tmp_path, table, edit, data, message):
    with pytest.raises(DataError, match=message):
        split(tmp_path, edit(table), **data)


def test_a_missing_file_is_named(tmp_path):
    settings = Settings(data=DataSettings("csv-pair", tmp_path / "train.csv", tmp_path / "holdout.csv"))
    with pytest.raises(DataError, match="train.csv does not exist"):
        sources.prepare(settings)


def test_a_week_with_a_source_that_has_no_weeks_is_refused(tmp_path, table):
    write_table(tmp_path / "mine.csv", *table)
    with pytest.raises(DataError, match='a week of data needs source = "synthetic"'):
        sources.prepare(Settings(data=DataSettings("csv", tmp_path / "mine.csv")), week=1)


def test_the_synthetic_source_without_its_module_says_what_to_set(tmp_path, monkeypatch):
    package = sys.modules[sources.__package__]
    monkeypatch.delattr(package, "synthetic", raising=False)
    monkeypatch.setitem(sys.modules, f"{sources.__package__}.synthetic", None)  # as if synthetic.py were deleted
    with pytest.raises(DataError, match='source = "synthetic" needs synthetic.py.*set source in'):
        sources.prepare(replace(Settings(), data_dir=tmp_path))
