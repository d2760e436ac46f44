def fit(data: Dataset, seed: int = 0) -> Pipeline:
    """Fit the model on a dataset."""
    return build_model(seed).fit(data.X, data.y)
