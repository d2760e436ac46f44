"""The one declaration of the model's inputs: validation, training, the API and docs derive from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Kind = Literal["float", "int", "bool"]


@dataclass(frozen=True)
class Feature:
    """One numeric input column: its API field name, kind, allowed range, meaning and CSV header if not its name."""

    name: str
    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""
    column: str | None = None

    @property
    def header(self) -> str:
        """The column's name in the CSV files."""
        return self.column or self.name

    def to_dict(self) -> dict:
        """Return the feature as plain JSON-ready data (stored in each model's metadata)."""
        # a feature whose CSV header is its name has no "column": its metadata stays as it was
        return {key: value for key, value in asdict(self).items() if key != "column" or value is not None}

    @classmethod
    def from_dict(cls, data: dict) -> Feature:
        """Rebuild a feature from its metadata form."""
        return cls(**data)


# from the prompts: the API answers "<TARGET>_probability"; its schema and error messages name a RECORD
TARGET = {{ cookiecutter.target | tojson }}
RECORD = {{ cookiecutter.record_name | tojson }}

# ----------------------------------------------------------------------------
# EDIT HERE: your own data. List your CSV's numeric columns and name its 0/1
# label column, or let `{{ cookiecutter.project_slug }} declare FILE.csv --label COLUMN --write`
# write both; the API schema, validation, training and docs all follow.
# ----------------------------------------------------------------------------
LABEL = "is_fraud"

FEATURES: tuple[Feature, ...] = (
    Feature("amount", "float", 0.0, 100_000.0, "Transaction amount in the card's currency."),
    Feature("hour", "int", 0, 23, "Local hour of the day the transaction happened."),
    Feature("merchant_risk", "float", 0.0, 1.0, "Risk score of the merchant category, 0 to 1."),
    Feature("distance_from_home_km", "float", 0.0, 20_000.0, "Distance from the cardholder's home."),
    Feature("card_present", "bool", description="Whether the physical card was used."),
    Feature("transactions_last_24h", "int", 0, 1_000, "Card transactions in the previous 24 hours."),
)


def feature_names(features: tuple[Feature, ...] = FEATURES) -> list[str]:
    """Return the feature names in model-input order."""
    return [feature.name for feature in features]
