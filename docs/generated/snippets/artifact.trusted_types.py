# ----------------------------------------------------------------------------
# EDIT HERE, rarely: a model file may hold exactly what build_model() in train.py
# holds once fitted (its classes, functions and plain data, each built by the
# same skops loader), found by fitting it on a few rows: change the estimator and
# the allow-list follows. List a "module.name" here only for what such a fit does
# not show; tests/test_artifact.py names it. Listing a function lets a model
# file call it.
# ----------------------------------------------------------------------------
TRUSTED_TYPES: tuple[str, ...] = ()
