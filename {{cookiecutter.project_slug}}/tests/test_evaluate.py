"""ROC AUC with DeLong standard errors, checked against scikit-learn and the bootstrap; drift (PSI)."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from {{ cookiecutter.package_name }} import evaluate
from {{ cookiecutter.package_name }}.evaluate import auc_estimate, compare_aucs, delong

BOOTSTRAP_ROUNDS = 1_000


def scored_sample(n=2_000, seed=0):
    """Labels (about 20% positive) and two correlated, imperfect scores of them."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    shared = rng.normal(size=n)
    better = 1.2 * y + shared + 0.5 * rng.normal(size=n)
    worse = 0.9 * y + shared + 0.5 * rng.normal(size=n)
    return y, better, worse


def bootstrap_aucs(y, scores, rounds=BOOTSTRAP_ROUNDS, seed=1):
    """AUC of every score row on each of ``rounds`` resamples of the rows (Mann-Whitney via ranks)."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(y), size=(rounds, len(y)))
    labels = y[rows].astype(bool)
    positives = labels.sum(axis=1)
    negatives = len(y) - positives
    aucs = []
    for score in np.atleast_2d(scores):
        ranks = stats.rankdata(score[rows], axis=1)
        rank_sum = np.where(labels, ranks, 0).sum(axis=1)
        aucs.append((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))
    return np.array(aucs)


def test_delong_auc_equals_scikit_learn():
    y, better, worse = scored_sample()
    aucs, _ = delong(y, np.vstack([better, worse]))
    assert aucs == pytest.approx([roc_auc_score(y, better), roc_auc_score(y, worse)], abs=1e-12)


def test_delong_standard_error_agrees_with_the_bootstrap():
    y, better, _ = scored_sample()
    estimate = auc_estimate(y, better)
    bootstrap = bootstrap_aucs(y, better)[0]
    assert estimate.std_error == pytest.approx(bootstrap.std(ddof=1), rel=0.15)
    assert estimate.auc == pytest.approx(bootstrap.mean(), abs=0.005)


def test_paired_difference_variance_agrees_with_the_bootstrap():
    y, better, worse = scored_sample()
    comparison = compare_aucs(y, better, worse)
    candidate, baseline = bootstrap_aucs(y, np.vstack([better, worse]))
    differences = candidate - baseline
    assert comparison.std_error == pytest.approx(differences.std(ddof=1), rel=0.15)
    assert comparison.difference == pytest.approx(roc_auc_score(y, better) - roc_auc_score(y, worse), abs=1e-12)
    # pairing matters: the difference is far more precise than the two AUCs taken apart
    unpaired = np.hypot(comparison.candidate.std_error, comparison.baseline.std_error)
    assert comparison.std_error < 0.6 * unpaired


def test_delong_handles_tied_scores():
    y, better, _ = scored_sample()
    coarse = np.round(better)  # a handful of distinct values, so most scores are tied
    aucs, covariance = delong(y, coarse)
    assert aucs[0] == pytest.approx(roc_auc_score(y, coarse), abs=1e-12)
    assert covariance[0, 0] > 0
    constant = auc_estimate(y, np.zeros(len(y)))
    assert constant.auc == pytest.approx(0.5)
    assert constant.std_error == pytest.approx(0.0)


@pytest.mark.parametrize(("positives", "negatives"), [(1, 50), (50, 1), (0, 50)])
def test_delong_refuses_too_few_positives_or_negatives(positives, negatives):
    y = np.array([1] * positives + [0] * negatives)
    with pytest.raises(ValueError, match="at least 2 positive and 2 negative"):
        delong(y, np.linspace(0, 1, len(y)))


def test_auc_estimate_reports_a_confidence_interval_and_counts():
    y, better, _ = scored_sample()
    narrow, wide = auc_estimate(y, better, confidence=0.8), auc_estimate(y, better, confidence=0.99)
    assert narrow.ci_low < narrow.auc < narrow.ci_high
    assert wide.ci_low < narrow.ci_low and narrow.ci_high < wide.ci_high
    assert wide.ci_high - wide.auc == pytest.approx(stats.norm.ppf(0.995) * wide.std_error)
    assert (narrow.positives, narrow.negatives) == (int(y.sum()), int(len(y) - y.sum()))
    assert narrow.to_dict()["confidence"] == 0.8


def test_compare_aucs_lower_bound_is_one_sided():
    y, better, worse = scored_sample()
    comparison = compare_aucs(y, worse, better, confidence=0.95)
    assert comparison.difference < 0
    expected = comparison.difference - stats.norm.ppf(0.95) * comparison.std_error
    assert comparison.lower_bound == pytest.approx(expected)


def test_identical_scores_compare_as_no_difference():
    y, better, _ = scored_sample()
    comparison = compare_aucs(y, better, better.copy())
    assert comparison.difference == 0
    assert comparison.std_error == pytest.approx(0.0, abs=1e-9)


def test_population_stability_is_near_zero_without_drift_and_large_with_it():
    rng = np.random.default_rng(0)
    profile = evaluate.feature_profile(rng.normal(size=5_000))
    assert sum(profile["shares"]) == pytest.approx(1.0)
    assert evaluate.population_stability(profile, rng.normal(size=5_000)) < 0.02
    assert evaluate.population_stability(profile, rng.normal(loc=1.0, size=5_000)) > 0.5


def test_population_stability_sees_a_shift_in_a_yes_no_feature():
    rng = np.random.default_rng(0)
    profile = evaluate.feature_profile((rng.random(5_000) < 0.7).astype(float))
    assert evaluate.population_stability(profile, (rng.random(5_000) < 0.7).astype(float)) < 0.01
    assert evaluate.population_stability(profile, (rng.random(5_000) < 0.45).astype(float)) > 0.2
