# ----------------------------------------------------------------------------
# EDIT HERE: the estimator. Any scikit-learn classifier with predict_proba works;
# model files may then hold what it holds once fitted (artifact.py derives the allow-list).
# ----------------------------------------------------------------------------
def build_model(seed: int = 0) -> Pipeline:
    """Return the untrained model: scaling, then logistic regression."""
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(max_iter=1_000, random_state=seed)),
        ]
    )
