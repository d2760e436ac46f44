"""`declare`: the declaration written from a CSV accepts that CSV; a table it cannot use gets one clear line."""

import math
import re
from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }} import declare, features
from {{ cookiecutter.package_name }}.cli import PROG, main
from {{ cookiecutter.package_name }}.data import DataError, read_csv, write_csv
from {{ cookiecutter.package_name }}.features import LABEL, Feature, feature_names


def run_declaration(text: str) -> dict:
    """Run a declaration as features.py would, and return its names."""
    namespace = {"Feature": Feature}
    exec(text, namespace)  # the text is this test's own output, as features.py would hold it
    return namespace


def test_the_declaration_of_the_training_data_names_its_columns_and_accepts_it_with_a_margin(tmp_path, data_files):
    path = tmp_path / "train.csv"
    write_csv(path, read_csv(data_files[0]))  # only the declared columns and the label
    declared = declare.declare(path, LABEL)
    assert [feature.name for feature in declared] == feature_names()
    namespace = run_declaration(declare.render(declared, LABEL))
    assert namespace["LABEL"] == LABEL and namespace["FEATURES"] == declared
    data = read_csv(path, declared)  # raises if any value breaks a declared kind or range
    for feature, column in zip(declared, data.X.T, strict=True):
        if feature.kind == "bool":
            assert set(np.unique(column)) <= {0, 1}, feature.name
            continue
        span = column.max() - column.min()
        assert feature.maximum >= column.max() + declare.MARGIN * span * 0.999, feature.name
        floor = max(column.min() - declare.MARGIN * span, 0 if column.min() >= 0 else -math.inf)
        assert feature.minimum <= floor + 1e-9, feature.name


def test_kinds_and_ranges_follow_the_values_and_ignored_columns_are_left_out(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("id,flag,count,ratio,debt,outcome\n1,0,0,0.5,-20.0,1\n2,1,10,0.25,35.5,0\n3,1,7,0.75,0,0\n")
    declared = {feature.name: feature for feature in declare.declare(path, "outcome", ("id",))}
    assert list(declared) == ["flag", "count", "ratio", "debt"]
    assert declared["flag"] == Feature("flag", "bool", description="Column flag of table.csv.")
    assert (declared["count"].kind, declared["count"].minimum, declared["count"].maximum) == ("int", 0, 11)  # not -1
    assert (declared["ratio"].kind, declared["ratio"].minimum, declared["ratio"].maximum) == ("float", 0.2, 0.8)
    assert (declared["debt"].minimum, declared["debt"].maximum) == (-26.0, 42.0)  # may be negative: no floor at 0


@pytest.mark.parametrize(
    ("text", "label", "message"),
    [
        ("x,y\n1.5,0\n2.5,0\n", "y", "label column y holds only 0"),
        ("x,y\n1.5,0\n2.5,2\n", "y", "label column y must hold only 0 and 1"),
        ("x,y\n1.5,no\n2.5,yes\n", "y", "line 2: column y holds 'no', not a number; it must hold 0 and 1"),
        ("x,colour,y\n1.5,red,0\n2.5,blue,1\n", "y", "line 2: column colour holds 'red', not a number"),
        ("x,z,y\n1.5,,0\n2.5,3,1\n", "y", "line 2: column z has a missing value"),
        ("x,z,y\n1.5,4,0\n2.5,NA,1\n", "y", "line 3: column z has a missing value"),
        ("x,z,y\n1.5,inf,0\n2.5,3,1\n", "y", "line 2: column z holds 'inf'"),
        ("x,y\n1.5,0\n2.5,1\n", "label", "has no column 'label'; its columns: x, y"),
        ("x,x,y\n1,2,0\n3,4,1\n", "y", "column 'x' appears twice"),
        ("x,y\n", "y", "has a header but no rows"),
        ("", "y", "is empty; expected a header row"),
        ("y\n0\n1\n", "y", "no feature column besides the label y"),
    ],
    ids=[
        "one-class",
        "label-not-0-or-1",
        "label-text",
        "text-column",
        "blank-cell",
        "NA-cell",
        "infinite",
        "unknown-label",
        "repeated-column",
        "no-rows",
        "empty",
        "label-only",
    ],
)
def test_a_table_declare_cannot_use_gets_one_line_naming_the_column(tmp_path, capsys, text, label, message):
    path = tmp_path / "table.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=re.escape(message)):
        declare.declare(path, label)
    assert main(["declare", str(path), "--label", label]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith(f"{PROG}: error: ")


def test_headers_that_cannot_be_api_fields_get_field_names_and_the_csv_is_read_as_it_is(tmp_path):
    path = tmp_path / "table.csv"
    headers = ["a/b", "x-1", "2nd", "json", "monthly charge", "a_b", LABEL]
    rows = [[1.5, 2, 3, 4, 5, 6, 0], [2.5, 3, 4, 5, 6, 7, 1], [3.5, 4, 5, 6, 7, 8, 1]]
    path.write_text("\n".join(",".join(map(str, row)) for row in [headers, *rows]) + "\n")
    declared = declare.declare(path, LABEL)
    assert [f.name for f in declared] == ["a_b_", "x_1", "col_2nd", "col_json", "monthly_charge", "a_b"]
    assert [f.header for f in declared] == headers[:-1]
    assert all(name.isidentifier() for name in feature_names(declared))
    assert run_declaration(declare.render(declared, LABEL))["FEATURES"] == declared
    assert read_csv(path, declared).X.tolist() == [row[:-1] for row in rows]  # the CSV's own headers


def test_the_command_prints_the_declaration_and_notes_what_to_check_without_writing(tmp_path, capsys):
    path = tmp_path / "table.csv"
    path.write_text("flag,same,x-1,y\n0,7,1.5,0\n1,7,2.5,1\n1,7,0.5,0\n")
    before = Path(features.__file__).read_text()
    assert main(["declare", str(path), "--label", "y"]) == 0
    out, err = capsys.readouterr()
    assert out == declare.render(declare.declare(path, "y"), "y")
    assert len(run_declaration(out)["FEATURES"]) == 3
    assert Path(features.__file__).read_text() == before
    notes = err.splitlines()
    assert any("flag holds only 0 and 1" in note and '"int"' in note for note in notes)
    assert any("same holds only 7" in note and "--ignore" in note for note in notes)
    assert any("'x-1' is the API field 'x_1'" in note for note in notes)


def test_write_puts_a_declaration_laid_out_as_ruff_would_in_place_of_the_old_one(tmp_path):
    long_name = "a_feature_whose_name_is_long_enough_to_push_its_declaration_past_one_hundred_and_twenty"
    declared = (
        Feature("x", "float", 0.0, 1.0, "Column x of t.csv."),
        Feature(long_name, "float", 0.0, 1.0, f"Column {long_name} of a.csv."),
        Feature("x_1", "bool", description="Column x-1 of t.csv.", column="x-1"),
    )
    declaration = declare.render(declared, "outcome")
    assert all(len(line) <= declare.LINE_LENGTH for line in declaration.splitlines())
    assert run_declaration(declaration)["FEATURES"] == declared
    original = Path(features.__file__).read_text()
    copy = tmp_path / "features.py"
    copy.write_text(original)
    declare.write(copy, declaration)
    start, end = original.index("LABEL = "), original.index("\n)\n", original.index("FEATURES: ")) + 3
    assert copy.read_text() == original[:start] + declaration + original[end:]
    copy.write_text("FEATURES = ()\n")
    with pytest.raises(DataError, match="cannot find one"):
        declare.write(copy, declaration)
