"""Labelled tables of the shapes real data comes in, for adopting them as docs/how-to/own-data.md says.

Each entry of SHAPES writes one seeded CSV (the same bytes every time, standard library only) and knows what a user
would then type: the `declare` arguments (label, --ignore columns) and the [tool.<package>.data] table. Every table
has a real signal (logistic regression scores an AUC well above the default gate floor of 0.80 on its holdout) and
both classes in its training and holdout rows; each differs from an ordinary table in one way, its id says which.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

Rows = tuple[list[str], list[list[object]]]  # a header (label included) and the rows, values as written


@dataclass(frozen=True)
class Shape:
    """One kind of table: how to write it, its label, the columns to --ignore and the time-split column if any."""

    id: str
    about: str
    label: str
    make: Callable[[random.Random], Rows]
    ignore: tuple[str, ...] = ()
    split_column: str = ""
    seed: int = 0

    @property
    def file(self) -> str:
        """The table's path in the project, as the guide puts it: under datasets/."""
        return f"datasets/{self.id.replace('-', '_')}.csv"

    def write(self, project: Path) -> Path:
        """Write the table into ``project`` at ``file`` and return its path."""
        header, rows = self.make(random.Random(self.seed))
        path = project / self.file
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        return path

    def declare_args(self) -> list[str]:
        """The arguments of `<slug> declare` that write this table's features: file, --label, --ignore, --write."""
        ignored = [arg for name in self.ignore for arg in ("--ignore", name)]
        return [self.file, "--label", self.label, *ignored, "--write"]

    def data_table(self, package: str) -> str:
        """The [tool.<package>.data] table of pyproject.toml that reads this table."""
        lines = [f"[tool.{package}.data]", 'source = "csv"', f"path = {json.dumps(self.file)}"]
        if self.split_column:
            lines.append(f"split_column = {json.dumps(self.split_column)}")
        return "\n".join(lines) + "\n"


def _sigmoid(value: float) -> float:
    return 1 / (1 + math.exp(-value))


def _draw(rng: random.Random, logit: float) -> int:
    """A 0/1 label with probability sigmoid(logit) of 1."""
    return int(rng.random() < _sigmoid(logit))


def _ids_and_dates(rng: random.Random, rows: int, start: int = 1) -> list[tuple[int, str]]:
    """Row ids and ISO dates in increasing order, a few rows a day (several rows may share a date)."""
    days = sorted(rng.randrange(rows // 2 + 30) for _ in range(rows))
    return [(start + number, (date(2022, 3, 1) + timedelta(days=day)).isoformat()) for number, day in enumerate(days)]


def digits(rng: random.Random) -> Rows:
    """Like scikit-learn's digits: 8x8 int pixels 0..16 and a label other than the digit (odd or even)."""
    pixels = [f"pixel_{row}_{column}" for row in range(8) for column in range(8)]
    base = [rng.uniform(1, 15) for _ in pixels]
    shift = [rng.choice((-1, 1)) * rng.uniform(2.0, 3.5) if rng.random() < 0.3 else 0.0 for _ in pixels]
    rows = []
    for _ in range(1_000):
        odd = int(rng.random() < 0.5)
        means = [b + (s if odd else -s) / 2 for b, s in zip(base, shift, strict=True)]
        values = [min(16, max(0, round(mean + rng.gauss(0, 4)))) for mean in means]
        rows.append([*values, odd])
    return [*pixels, "is_odd"], rows


def floats_without_integers(rng: random.Random) -> Rows:
    """Like breast-cancer measurements: 30 floats, each within a range such as 0.04..0.18 that holds no integer."""
    measures = ["radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity"]
    measures += ["concave_points", "symmetry", "fractal_dimension"]
    names = [f"{stat}_{measure}" for stat in ("mean", "error", "worst") for measure in measures]
    lows = [rng.choice((0.04, 0.11, 0.2, 0.35, 0.5, 0.62)) for _ in names]
    spans = [rng.choice((0.14, 0.08, 0.2, 0.05)) for _ in names]
    weights = [rng.choice((-1, 1)) * rng.uniform(0.3, 0.5) if rng.random() < 0.35 else 0.0 for _ in names]
    rows = []
    for _ in range(569):
        malignant = int(rng.random() < 0.37)
        sign = 1 if malignant else -1
        values = [
            round(low + span * _sigmoid(sign * weight + rng.gauss(0, 1)), 5)
            for low, span, weight in zip(lows, spans, weights, strict=True)
        ]
        rows.append([*values, malignant])
    return [*names, "malignant"], rows


def all_bools(rng: random.Random) -> Rows:
    """Survey answers: every feature only 0 or 1, no id column."""
    names = ["has_phone", "owns_home", "has_children", "is_student", "reads_news", "votes", "has_car", "rents"]
    names += ["uses_coupons", "shops_online", "has_pet", "works_remote", "travels", "has_degree"]
    shares = [rng.uniform(0.2, 0.8) for _ in names]
    weights = [rng.choice((-1, 1)) * rng.uniform(1.0, 2.0) if i % 2 == 0 else 0.0 for i, _ in enumerate(names)]
    rows = []
    for _ in range(800):
        values = [int(rng.random() < share) for share in shares]
        logit = sum(w * (v - s) for w, v, s in zip(weights, values, shares, strict=True))
        rows.append([*values, _draw(rng, 2.0 * logit)])
    return [*names, "bought"], rows


def constant_column(rng: random.Random) -> Rows:
    """Subscriptions with an id, a date for a time split, and one column that holds the same value on every row."""
    header = ["subscription_id", "started_on", "monthly_fee", "seats", "logins_last_month", "plan_version"]
    header += ["support_tickets", "discount", "cancelled"]
    rows = []
    for number, day in _ids_and_dates(rng, 700, start=5_000):
        fee, seats, logins = round(rng.uniform(9, 99), 2), rng.randint(1, 50), rng.randint(0, 120)
        tickets, discount = int(rng.expovariate(0.6)), round(rng.choice((0, 0.1, 0.15, 0.25)), 2)
        logit = 0.04 * (fee - 50) - 0.05 * (logins - 40) + 0.7 * (tickets - 1.5) - 0.03 * (seats - 25) - 1.0
        rows.append([number, day, fee, seats, logins, 3, tickets, discount, _draw(rng, logit)])
    return header, rows


def small_wine(rng: random.Random) -> Rows:
    """Like scikit-learn's wine: 178 rows of 13 floats; the label is one cultivar against the other two."""
    columns = {  # name: (mean of the other cultivars, mean of this one, spread)
        "alcohol": (12.6, 13.7, 0.5),
        "malic_acid": (2.4, 2.0, 1.0),
        "ash": (2.35, 2.45, 0.25),
        "alcalinity_of_ash": (20.5, 17.0, 3.0),
        "magnesium": (97.0, 106.0, 12.0),
        "total_phenols": (1.9, 2.8, 0.5),
        "flavanoids": (1.6, 2.9, 0.6),
        "nonflavanoid_phenols": (0.4, 0.29, 0.1),
        "proanthocyanins": (1.4, 1.9, 0.5),
        "color_intensity": (5.1, 5.5, 2.0),
        "hue": (0.93, 1.06, 0.2),
        "od280_od315_of_diluted_wines": (2.4, 3.1, 0.6),
        "proline": (560.0, 1100.0, 250.0),
    }
    rows = []
    for number in range(178):
        first = int(number < 59)
        values = []
        for other, this, spread in columns.values():
            values.append(round(max(0.01, rng.gauss(this if first else other, spread * 2.2)), 2))
        rows.append([*values, first])
    rng.shuffle(rows)
    return [*columns, "cultivar_1"], rows


def near_perfect(rng: random.Random) -> Rows:
    """Messages whose label logistic regression all but perfectly predicts (holdout AUC of 0.995 or more)."""
    names = ["links", "exclamations", "caps_ratio", "words", "sender_age_days", "known_sender", "spam_words"]
    rows = []
    for _ in range(600):
        spam = int(rng.random() < 0.3)
        links = max(0, round(rng.gauss(6 if spam else 1, 1.5)))
        exclamations = max(0, round(rng.gauss(5 if spam else 1, 1.5)))
        caps = round(min(1.0, max(0.0, rng.gauss(0.35 if spam else 0.08, 0.08))), 3)
        words = max(5, round(rng.gauss(180, 60)))
        age = max(0, round(rng.gauss(40 if spam else 700, 120)))
        known = int(rng.random() < (0.05 if spam else 0.7))
        spam_words = max(0, round(rng.gauss(7 if spam else 1, 1.5)))
        rows.append([links, exclamations, caps, words, age, known, spam_words, spam])
    return [*names, "is_spam"], rows


def redundant(rng: random.Random) -> Rows:
    """Loan applications where the informative column comes again as an exact copy, in other units and with noise."""
    header = ["application_id", "applied_on", "income", "income_copy", "income_thousands", "income_reported"]
    header += ["age", "debt_ratio", "open_accounts", "approved"]
    rows = []
    for number, day in _ids_and_dates(rng, 800, start=1):
        income = round(rng.lognormvariate(10.8, 0.45), 2)
        age, debt, accounts = rng.randint(21, 70), round(rng.uniform(0.0, 0.9), 3), rng.randint(0, 12)
        logit = 2.2 * (math.log(income) - 10.8) / 0.45 - 2.5 * (debt - 0.45) + 0.02 * (age - 45)
        reported = round(income * (1 + rng.gauss(0, 0.002)), 2)
        rows.append([number, day, income, income, round(income / 1000, 3), reported, age, debt, accounts])
        rows[-1].append(_draw(rng, logit))
    return header, rows


def label_named_target(rng: random.Random) -> Rows:
    """Patients whose label column is called `target`, with an id and a visit date for a time split."""
    header = ["patient_id", "visited_on", "age", "resting_bp", "cholesterol", "max_heart_rate", "smoker", "bmi"]
    rows = []
    for number, day in _ids_and_dates(rng, 600, start=300):
        age, bp, chol = rng.randint(29, 77), rng.randint(94, 200), rng.randint(126, 420)
        rate, smoker, bmi = rng.randint(71, 202), int(rng.random() < 0.3), round(rng.uniform(17, 42), 1)
        logit = 0.07 * (age - 54) + 0.02 * (bp - 130) - 0.04 * (rate - 150) + 1.0 * smoker + 0.08 * (bmi - 28)
        rows.append([number, day, age, bp, chol, rate, smoker, bmi, _draw(rng, 1.4 * logit)])
    return [*header, "target"], rows


def names_not_identifiers(rng: random.Random) -> Rows:
    """Sensor readings whose column names are not Python identifiers: `a/b`, `x-1`, `2nd`."""
    header = ["a/b", "x-1", "2nd", "temperature", "pressure", "failed"]
    rows = []
    for _ in range(600):
        ratio, lagged, second = round(rng.uniform(0.1, 3.0), 3), round(rng.gauss(50, 10), 2), rng.randint(0, 40)
        temperature, pressure = round(rng.gauss(70, 8), 1), round(rng.uniform(0.9, 1.1), 4)
        logit = 1.6 * (ratio - 1.5) + 0.08 * (lagged - 50) + 0.05 * (second - 20) + 0.1 * (temperature - 70)
        rows.append([ratio, lagged, second, temperature, pressure, _draw(rng, 1.5 * logit)])
    return header, rows


def ints_written_as_floats(rng: random.Random) -> Rows:
    """Whole numbers written as `127.0`, as pandas writes an int column that once held a missing value."""
    header = ["stay_id", "admitted_on", "age", "length_of_stay", "previous_visits", "medications", "glucose"]
    header += ["weight_kg", "readmitted"]
    rows = []
    for number, day in _ids_and_dates(rng, 700, start=100):
        age, stay, visits, meds = rng.randint(18, 95), rng.randint(1, 30), int(rng.expovariate(0.4)), rng.randint(0, 25)
        glucose, weight = rng.randint(60, 300), round(rng.gauss(78, 15), 1)
        logit = 0.03 * (age - 55) + 0.12 * (stay - 8) + 0.5 * (visits - 2.5) + 0.08 * (meds - 12) - 0.6
        whole = [float(value) for value in (age, stay, visits, meds, glucose)]  # written as 84.0, 3.0, ...
        rows.append([number, day, *whole, weight, _draw(rng, 1.2 * logit)])
    return header, rows


def no_date(rng: random.Random) -> Rows:
    """An ordinary table with no date column: int, float and 0/1 features, split stratified by class."""
    header = ["limit_balance", "age", "months_late", "bill_amount", "paid_amount", "is_married", "defaulted"]
    rows = []
    for _ in range(900):
        limit, age, late = rng.randint(10, 500) * 1_000, rng.randint(21, 75), min(9, int(rng.expovariate(0.8)))
        bill = round(rng.uniform(0, 1.1) * limit, 2)
        paid, married = round(bill * rng.uniform(0, 1), 2), int(rng.random() < 0.45)
        logit = 1.1 * (late - 1.2) + 2.0 * (bill / limit - 0.55) - 2.5 * (paid / max(bill, 1) - 0.5) - 0.8
        rows.append([limit, age, late, bill, paid, married, _draw(rng, 1.8 * logit)])
    return header, rows


SHAPES = [
    Shape("digits-64-int-pixels", digits.__doc__, "is_odd", digits, seed=1),
    Shape("floats-without-integers", floats_without_integers.__doc__, "malignant", floats_without_integers, seed=2),
    Shape("all-bool-features", all_bools.__doc__, "bought", all_bools, seed=3),
    Shape(
        "constant-column",
        constant_column.__doc__,
        "cancelled",
        constant_column,
        ignore=("subscription_id", "started_on"),
        split_column="started_on",
        seed=4,
    ),
    Shape("178-rows-wine", small_wine.__doc__, "cultivar_1", small_wine, seed=5),
    Shape("near-perfect-model", near_perfect.__doc__, "is_spam", near_perfect, seed=6),
    Shape(
        "redundant-features",
        redundant.__doc__,
        "approved",
        redundant,
        ignore=("application_id", "applied_on"),
        split_column="applied_on",
        seed=7,
    ),
    Shape(
        "label-named-target",
        label_named_target.__doc__,
        "target",
        label_named_target,
        ignore=("patient_id", "visited_on"),
        split_column="visited_on",
        seed=8,
    ),
    Shape("names-not-identifiers", names_not_identifiers.__doc__, "failed", names_not_identifiers, seed=9),
    Shape(
        "ints-written-as-floats",
        ints_written_as_floats.__doc__,
        "readmitted",
        ints_written_as_floats,
        ignore=("stay_id", "admitted_on"),
        split_column="admitted_on",
        seed=10,
    ),
    Shape("no-date-stratified", no_date.__doc__, "defaulted", no_date, seed=11),
]
