"""Synthetic transactions (deterministic, drifting) and CSV input with clear errors."""

import csv

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from {{ cookiecutter.package_name }}.data import DataError, read_csv, sha256_of, synthetic_transactions, write_csv
from {{ cookiecutter.package_name }}.features import FEATURES, LABEL, feature_names
from {{ cookiecutter.package_name }}.train import fit

# large enough that the drift shows well above sampling noise
DRIFT_ROWS = 20_000


def test_synthetic_data_is_deterministic_for_a_seed():
    first, again = synthetic_transactions(500, week=2, seed=7), synthetic_transactions(500, week=2, seed=7)
    assert np.array_equal(first.X, again.X)
    assert np.array_equal(first.y, again.y)


def test_synthetic_data_changes_with_the_seed_and_the_week():
    base = synthetic_transactions(500, week=0, seed=0)
    assert not np.array_equal(base.X, synthetic_transactions(500, week=0, seed=1).X)
    assert not np.array_equal(base.X, synthetic_transactions(500, week=1, seed=0).X)


@pytest.mark.parametrize("week", [0, 4])
def test_fraud_is_a_few_percent_of_transactions(week):
    data = synthetic_transactions(DRIFT_ROWS, week=week, seed=0)
    assert 0.02 < data.y.mean() < 0.04
    assert data.positives + data.negatives == DRIFT_ROWS


def test_synthetic_data_respects_every_declared_range():
    data = synthetic_transactions(DRIFT_ROWS, week=4, seed=0)
    for column, feature in zip(data.X.T, FEATURES, strict=True):
        low, high = (0, 1) if feature.kind == "bool" else (feature.minimum, feature.maximum)
        assert low <= column.min() and column.max() <= high, feature.name
        if feature.kind != "float":
            assert np.array_equal(column, np.round(column)), feature.name


def test_synthetic_data_rejects_a_negative_week():
    with pytest.raises(DataError, match="week"):
        synthetic_transactions(10, week=-1)


def test_a_week_0_model_loses_auc_on_week_4_and_a_retrain_wins_it_back():
    def auc(model, data):
        return roc_auc_score(data.y, model.predict_proba(data.X)[:, 1])

    old_model = fit(synthetic_transactions(DRIFT_ROWS, week=0, seed=0))
    new_model = fit(synthetic_transactions(DRIFT_ROWS, week=4, seed=0))
    holdout_week0 = synthetic_transactions(DRIFT_ROWS, week=0, seed=10_000)
    holdout_week4 = synthetic_transactions(DRIFT_ROWS, week=4, seed=10_000)
    # measured: 0.892 on week 0, 0.819 on week 4, 0.905 after retraining on week 4
    assert auc(old_model, holdout_week4) < auc(old_model, holdout_week0) - 0.03
    assert auc(new_model, holdout_week4) > auc(old_model, holdout_week4) + 0.03


def test_a_dataset_survives_a_csv_round_trip(tmp_path):
    data = synthetic_transactions(300, week=1, seed=3)
    write_csv(tmp_path / "data.csv", data)
    again = read_csv(tmp_path / "data.csv")
    assert np.array_equal(again.X, data.X)
    assert np.array_equal(again.y, data.y)


def test_read_csv_finds_columns_by_name_whatever_their_order(tmp_path):
    data = synthetic_transactions(50, week=0, seed=0)
    names = [*feature_names(), LABEL]
    order = ["note", *reversed(names)]
    with (tmp_path / "shuffled.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(order)
        for row in np.column_stack([data.X, data.y]).tolist():
            by_name = dict(zip(names, row, strict=True))
            writer.writerow(["a comment", *(by_name[name] for name in order[1:])])
    again = read_csv(tmp_path / "shuffled.csv")
    assert np.array_equal(again.X, data.X)
    assert np.array_equal(again.y, data.y)


def test_write_csv_writes_whole_numbers_without_a_decimal_point(tmp_path):
    write_csv(tmp_path / "data.csv", synthetic_transactions(5, week=0, seed=0))
    header, first = (tmp_path / "data.csv").read_text().splitlines()[:2]
    row = dict(zip(header.split(","), first.split(","), strict=True))
    assert row["hour"].isdigit()
    assert row["card_present"] in ("0", "1")
    assert row[LABEL] in ("0", "1")


def test_sha256_of_changes_when_one_byte_changes(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"abc")
    before = sha256_of(path)
    path.write_bytes(b"abd")
    assert sha256_of(path) != before
    assert len(before) == 64


def _good_csv(tmp_path):
    """A small valid CSV; returns its path, header and rows as lists of strings."""
    path = tmp_path / "data.csv"
    write_csv(path, synthetic_transactions(20, week=0, seed=0))
    header, *rows = [line.split(",") for line in path.read_text().splitlines()]
    return path, header, rows


def _set(tmp_path, column, value):
    """Write the small CSV with one cell of ``column`` (in the second data row) replaced."""
    path, header, rows = _good_csv(tmp_path)
    rows[1][header.index(column)] = value
    path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n")
    return path


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("amount", "lots", r"line 3: expected 7 numeric values"),
        ("amount", "-5", r"column amount must lie in \[0.0, 100000.0\]"),
        ("merchant_risk", "1.5", r"column merchant_risk must lie in"),
        ("amount", "nan", r"column amount holds NaN"),
        ("distance_from_home_km", "inf", r"column distance_from_home_km holds NaN or infinite"),
        ("hour", "3.5", r"column hour must hold whole numbers"),
        ("card_present", "2", r"column card_present must lie in \[0, 1\]"),
        (LABEL, "2", rf"column {LABEL} must hold only 0 and 1"),
        (LABEL, "", r"line 3: expected 7 numeric values"),
        (LABEL, "nan", rf"column {LABEL} must hold only 0 and 1"),
    ],
    ids=[
        "non-numeric",
        "negative",
        "above-maximum",
        "NaN",
        "infinity",
        "fraction",
        "bool-2",
        "label-2",
        "label-blank",
        "label-NaN",
    ],
)
def test_read_csv_names_the_problem(tmp_path, column, value, message):
    with pytest.raises(DataError, match=message):
        read_csv(_set(tmp_path, column, value))


def test_read_csv_names_a_missing_column(tmp_path):
    path, header, rows = _good_csv(tmp_path)
    drop = header.index("hour")
    path.write_text("\n".join(",".join(r[:drop] + r[drop + 1 :]) for r in [header, *rows]) + "\n")
    with pytest.raises(DataError, match="missing column.* hour"):
        read_csv(path)


def test_read_csv_names_a_short_row(tmp_path):
    path, header, rows = _good_csv(tmp_path)
    path.write_text("\n".join(",".join(row) for row in [header, rows[0], rows[1][:3]]) + "\n")
    with pytest.raises(DataError, match="line 3"):
        read_csv(path)


def test_read_csv_refuses_an_empty_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_csv(tmp_path / "empty.csv")


def test_read_csv_refuses_a_header_without_rows(tmp_path):
    (tmp_path / "header.csv").write_text(",".join([*feature_names(), LABEL]) + "\n")
    with pytest.raises(DataError, match="no rows"):
        read_csv(tmp_path / "header.csv")


def test_read_csv_names_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read data file .*missing.csv"):
        read_csv(tmp_path / "missing.csv")


def test_read_csv_takes_a_spreadsheets_byte_order_mark_and_blank_lines(tmp_path):
    path, header, rows = _good_csv(tmp_path)
    expected = read_csv(path)
    lines = [",".join(row) for row in [header, *rows]]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([*lines[:5], "", *lines[5:], "", ""]).encode())
    data = read_csv(path)
    assert (data.X == expected.X).all() and (data.y == expected.y).all()
