"""What a model file may hold: an allow-list of classes, checked against the file's schema before skops builds it."""

from __future__ import annotations

import functools
import json
import zipfile
from pathlib import Path

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

# Trusted too, so that swapping in one of scikit-learn's tree ensembles needs no edit above: the classes that a
# fitted HistGradientBoostingClassifier, GradientBoostingClassifier, RandomForestClassifier or ExtraTreesClassifier
# holds. Classes only, no function or method. The names follow scikit-learn's private modules: the lock pins its
# version, and tests/test_artifact.py fails when an upgrade moves one.
TREE_ENSEMBLES: tuple[str, ...] = (
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.dummy.DummyClassifier",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.Interval",
)


@functools.cache
def data_types() -> frozenset[str]:
    """What a fitted estimator holds besides its classes: plain values, numpy arrays, scalars, dtypes, random states."""
    import numpy as np  # here, not at the top: commands that only read the registry start without numpy

    return frozenset(
        {f"builtins.{name}" for name in ("bool", "bytes", "dict", "float", "int", "list", "slice", "str", "tuple")}
        | {f"numpy.{kind.__name__}" for kind in np.sctypeDict.values()}
        | {"numpy.ndarray", "numpy.dtype", "numpy.random.mtrand.RandomState", "numpy.random._generator.Generator"}
    )


def trusted_types() -> frozenset[str]:
    """Every type, function and method a model file may name: plain data, TRUSTED_TYPES and TREE_ENSEMBLES."""
    return data_types() | set(TRUSTED_TYPES) | set(TREE_ENSEMBLES)


def types_in(model_file: Path) -> set[str]:
    """Every type, function and method a skops file names, read from its schema without loading anything."""
    with zipfile.ZipFile(model_file) as archive:
        stack, names = [json.loads(archive.read("schema.json"))], set()
    while stack:  # a walk of every object in the schema, so nothing nested escapes the check
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
            if node.keys() & {"__class__", "__module__", "__loader__"} and node.get("__loader__") != "CachedNode":
                module, name = node.get("__module__"), node.get("__class__")
                if not (isinstance(module, str) and isinstance(name, str)):
                    raise ValueError(f"an object without a module and name: {str(node)[:80]}")
                if node.get("__loader__") == "MethodNode":  # a bound method: Class.method, trusted only by that name
                    content = node.get("content")
                    name += f".{content.get('func') if isinstance(content, dict) else None}"
                names.add(f"{module}.{name}")
    return names


def untrusted(model_file: Path) -> list[str]:
    """The types, functions and methods a skops file names outside trusted_types(), sorted; [] when it may load."""
    return sorted(types_in(model_file) - trusted_types())
