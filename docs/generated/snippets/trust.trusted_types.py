# ----------------------------------------------------------------------------
# EDIT HERE: the classes a model file may hold, as "module.Class". Loading refuses
# every other class, and every function or method (a FunctionTransformer's func,
# say) unless it is listed here too: listing one lets a model file call it. These
# are the classes of build_model() in train.py; change one, run the tests, and
# tests/test_artifact.py names each class to add.
# ----------------------------------------------------------------------------
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._logistic.LogisticRegression",
)
