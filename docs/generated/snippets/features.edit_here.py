# ----------------------------------------------------------------------------
# EDIT HERE: your own data. List your CSV's numeric columns and name its 0/1
# label column, or let `fraud-detector declare FILE.csv --label COLUMN --write`
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
