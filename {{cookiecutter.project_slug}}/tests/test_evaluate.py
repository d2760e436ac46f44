"""ROC AUC with DeLong standard errors and logit-scale intervals, checked against scikit-learn, the bootstrap and
simulations; the smallest detectable drop; drift (PSI)."""

import math

import numpy as np
import pytest
from scipy import special, stats
from sklearn.metrics import roc_auc_score

from {{ cookiecutter.package_name }} import gate as evaluate
from {{ cookiecutter.package_name }} import monitor
from {{ cookiecutter.package_name }}.gate import (
    POWER,
    AucEstimate,
    auc_estimate,
    compare_aucs,
    delong,
    detectable_drop,
    hanley_mcneil_std_error,
    holdout_warning,
    min_detectable_drop,
)

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


@pytest.mark.slow
def test_delong_standard_error_agrees_with_the_bootstrap():
    y, better, _ = scored_sample()
    estimate = auc_estimate(y, better)
    bootstrap = bootstrap_aucs(y, better)[0]
    assert estimate.std_error == pytest.approx(bootstrap.std(ddof=1), rel=0.15)
    assert estimate.auc == pytest.approx(bootstrap.mean(), abs=0.005)


@pytest.mark.slow
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
    # the interval is symmetric on the logit scale: logit(AUC) +/- z * SE / (AUC (1 - AUC)), by the delta method
    pairs = wide.positives * wide.negatives
    corrected = (pairs * wide.auc + 0.5) / (pairs + 1)
    half_width = stats.norm.ppf(0.995) * wide.std_error / (corrected * (1 - corrected))
    assert special.logit(wide.ci_high) - special.logit(corrected) == pytest.approx(half_width)
    assert special.logit(corrected) - special.logit(wide.ci_low) == pytest.approx(half_width)
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
    profile = monitor.feature_profile(rng.normal(size=5_000))
    assert sum(profile["shares"]) == pytest.approx(1.0)
    assert monitor.population_stability(profile, rng.normal(size=5_000)) < 0.02
    assert monitor.population_stability(profile, rng.normal(loc=1.0, size=5_000)) > 0.5


def test_population_stability_sees_a_shift_in_a_yes_no_feature():
    rng = np.random.default_rng(0)
    profile = monitor.feature_profile((rng.random(5_000) < 0.7).astype(float))
    assert monitor.population_stability(profile, (rng.random(5_000) < 0.7).astype(float)) < 0.01
    assert monitor.population_stability(profile, (rng.random(5_000) < 0.45).astype(float)) > 0.2


def separated(positives, negatives, perfect=True):
    """Labels and scores that rank every positive above every negative (or every negative above, if not perfect)."""
    y = np.array([1] * positives + [0] * negatives)
    return y, (y if perfect else 1 - y) + np.linspace(0, 0.5, len(y))


def test_interval_at_auc_one_is_not_zero_width():
    estimate = auc_estimate(*separated(2, 10))
    assert (estimate.auc, estimate.std_error) == (1.0, 0.0)
    assert estimate.ci_low == pytest.approx(0.70, abs=0.005) and estimate.ci_high == 1.0
    assert f"{estimate.ci_low:.4f} to {estimate.ci_high:.4f}" != "1.0000 to 1.0000"


def test_interval_at_auc_zero_is_not_zero_width():
    estimate = auc_estimate(*separated(2, 10, perfect=False))
    assert estimate.auc == 0.0
    assert estimate.ci_low == 0.0 and 0.1 < estimate.ci_high < 1


def test_interval_at_auc_one_narrows_as_the_holdout_grows():
    small, large = auc_estimate(*separated(2, 10)), auc_estimate(*separated(100, 1_000))
    assert small.ci_low < large.ci_low < 1.0


@pytest.mark.parametrize("seed", range(5))
def test_interval_stays_inside_zero_one_and_contains_the_auc(seed):
    rng = np.random.default_rng(seed)
    y = np.array([1, 1, 1] + [0] * 9)
    for scores in (rng.normal(size=12) + 3 * y, rng.integers(0, 2, size=12), np.zeros(12)):
        estimate = auc_estimate(y, scores)
        assert 0 <= estimate.ci_low <= estimate.auc <= estimate.ci_high <= 1
        assert estimate.ci_low < estimate.ci_high


def binormal_holdouts(auc, positives, negatives, rounds, seed, models=1, correlation=0.9):
    """Labels, and scores shaped (rounds, models, rows): normal in each class, with a true AUC of ``auc``.

    Two models' scores correlate at ``correlation`` row by row.
    """
    rng = np.random.default_rng(seed)
    y = np.array([1] * positives + [0] * negatives)
    shared = math.sqrt(correlation) * rng.normal(size=(rounds, 1, len(y)))
    own = math.sqrt(1 - correlation) * rng.normal(size=(rounds, models, len(y)))
    return y, math.sqrt(2) * stats.norm.ppf(auc) * y + shared + own


def exponential_holdouts(auc, positives, negatives, rounds, seed, correlation=0.9):
    """Holdouts scored by two alike models whose scores are exponential in each class (Hanley-McNeil's own model).

    Negatives follow Exp(1) and positives Exp(1/auc - 1), so P(positive > negative) = auc; a Gaussian copula
    correlates the two models' scores row by row.
    """
    y, normal = binormal_holdouts(0.5, positives, negatives, rounds, seed, models=2, correlation=correlation)
    return y, -np.log(stats.norm.sf(normal)) / np.where(y == 1, 1 / auc - 1, 1.0)


def simulated_delong(y, scores):
    """Every holdout's AUCs (rounds, models) and DeLong variances (rounds, models, models), by the project's delong."""
    rounds, models, _ = scores.shape
    aucs, variances = [], []
    for chunk in np.array_split(scores, max(1, rounds // 100)):
        auc, covariance = delong(y, chunk.reshape(-1, len(y)))
        blocks = covariance.reshape(len(chunk), models, len(chunk), models)
        aucs.append(auc.reshape(len(chunk), models))
        variances.append(blocks[np.arange(len(chunk)), :, np.arange(len(chunk)), :])
    return np.concatenate(aucs), np.concatenate(variances)


@pytest.mark.parametrize(("auc", "positives", "negatives"), [(0.9, 30, 300), (0.99, 10, 50)])
def test_the_logit_interval_covers_the_true_auc_where_the_plain_interval_does_not(auc, positives, negatives):
    aucs, variances = simulated_delong(*binormal_holdouts(auc, positives, negatives, rounds=1_000, seed=0))
    covered, plain = [], []
    for estimate, variance in zip(aucs[:, 0], variances[:, 0, 0], strict=True):
        low, high = evaluate.logit_interval(estimate, variance, positives, negatives, 0.95)
        covered.append(low <= auc <= high)
        half_width = stats.norm.ppf(0.975) * math.sqrt(variance)
        plain.append(estimate - half_width <= auc <= estimate + half_width)
    # measured: 93.7% and 98.0% for the logit interval; 91.0% and 65.5% for AUC +/- z * SE
    assert 0.9 <= np.mean(covered) <= 0.99
    if auc > 0.95:
        assert np.mean(plain) < 0.75


def paired(aucs, variances):
    """The first and second model's AUCs and the DeLong standard error of their difference, per holdout."""
    difference_variance = variances[:, 0, 0] + variances[:, 1, 1] - 2 * variances[:, 0, 1]
    return aucs[:, 0], aucs[:, 1], np.sqrt(np.clip(difference_variance, 0, None))


def test_hanley_mcneil_standard_error_agrees_with_a_simulation_of_its_model():
    first, _, _ = paired(*simulated_delong(*exponential_holdouts(0.9, 30, 150, rounds=1_000, seed=0)))
    assert first.mean() == pytest.approx(0.9, abs=0.003)
    assert hanley_mcneil_std_error(0.9, 30, 150) == pytest.approx(first.std(ddof=1), rel=0.06)


def test_min_detectable_drop_is_the_margin_at_which_the_gate_passes_an_equally_good_model_with_the_stated_power():
    first, second, std_error = paired(*simulated_delong(*exponential_holdouts(0.9, 30, 150, rounds=1_000, seed=1)))
    correlation = np.corrcoef(first, second)[0, 1]
    drop = min_detectable_drop(0.9, 30, 150, confidence=0.95, correlation=correlation)
    z_sum = stats.norm.ppf(0.95) + stats.norm.ppf(POWER)
    assert drop == pytest.approx(z_sum * (first - second).std(ddof=1), rel=0.1)
    # the gate's own rule, with max_auc_drop = drop: an equally good candidate passes with about POWER (measured: 77.7%)
    passed = np.mean(first - second - stats.norm.ppf(0.95) * std_error > -drop)
    assert passed == pytest.approx(POWER, abs=0.05)


def test_min_detectable_drop_errs_on_the_side_of_warning_for_normal_scores():
    holdouts = binormal_holdouts(0.9, 30, 150, rounds=1_000, seed=2, models=2)
    first, second, _ = paired(*simulated_delong(*holdouts))
    correlation = np.corrcoef(first, second)[0, 1]
    simulated = (stats.norm.ppf(0.95) + stats.norm.ppf(POWER)) * (first - second).std(ddof=1)
    # Hanley-McNeil's exponential model overstates the spread of normal scores' AUC (measured: 1.27 times here)
    assert simulated < min_detectable_drop(0.9, 30, 150, correlation=correlation) < 1.5 * simulated


def test_min_detectable_drop_shrinks_with_more_positives_and_with_more_alike_models():
    assert min_detectable_drop(0.9, 400, 4_000) < min_detectable_drop(0.9, 100, 4_000)
    assert min_detectable_drop(0.9, 100, 4_000, correlation=0.999) < min_detectable_drop(0.9, 100, 4_000)
    assert min_detectable_drop(1.0, 2, 10) > 0  # the continuity correction keeps it honest at AUC 1


def test_a_holdout_like_the_tutorials_can_detect_a_drop_well_under_one_point():
    # the tutorial's holdout: 20,000 rows, 583 positives, production's AUC 0.8921 with a DeLong SE of 0.0079
    low, high = evaluate.logit_interval(0.8921, 0.0079**2, 583, 19_417, 0.95)
    assert (round(low, 4), round(high, 4)) == (0.8756, 0.9066)
    assert abs(evaluate.continuity_corrected(0.8921, 583, 19_417) - 0.8921) < 1e-7
    tutorial = AucEstimate(0.8921, 0.0079, low, high, 0.95, 583, 19_417)
    assert tutorial.min_detectable_drop == pytest.approx(0.0031, abs=0.0001)
    assert holdout_warning(tutorial, max_auc_drop=0.01) is None


def test_a_one_point_margin_needs_about_sixty_positives_at_the_examples_auc_and_fraud_rate():
    def drop(positives):
        return min_detectable_drop(0.89, positives, round(positives * 97 / 3))

    assert drop(55) > 0.01 > drop(60)


def one_misplaced(positives, negatives):
    """Scores 0..N-1 ranking every positive above every negative, but for one row of the smaller class moved midway."""
    y = np.array([0] * negatives + [1] * positives)
    moved, middle = (negatives if positives < negatives else negatives - 1), len(y) // 2
    y[[moved, middle]] = y[[middle, moved]]
    return y, np.arange(len(y), dtype=float)


@pytest.mark.parametrize(("positives", "negatives"), [(2, 10), (500, 3)], ids=["few positives", "few negatives"])
def test_holdout_warning_names_the_counts_and_the_smallest_detectable_drop(positives, negatives):
    estimate = auc_estimate(*one_misplaced(positives, negatives))
    assert 0.75 < estimate.auc < 0.9
    warning = holdout_warning(estimate, max_auc_drop=0.01)
    assert f"{positives} positives and {negatives} negatives" in warning
    assert "too small for max_auc_drop = 0.01" in warning
    assert f"{estimate.min_detectable_drop:.4f}" in warning and estimate.min_detectable_drop > 0.01
    assert holdout_warning(estimate, max_auc_drop=0.5) is None


def test_auc_estimate_data_carries_the_smallest_detectable_drop():
    estimate = auc_estimate(*separated(2, 10))
    data = estimate.to_dict()
    assert data["min_detectable_drop"] == estimate.min_detectable_drop == min_detectable_drop(1.0, 2, 10, 0.95)


def test_the_detectable_drop_is_never_below_what_the_gates_own_paired_bound_can_resolve():
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(40), np.zeros(405)].astype(int)
    scores = np.where(y == 1, rng.normal(4, 1, y.size), rng.normal(0, 1, y.size))  # AUC near 1
    estimate = auc_estimate(y, scores)
    paired = 0.004  # the paired difference's standard error the gate measured
    bound = (stats.norm.ppf(estimate.confidence) + stats.norm.ppf(0.8)) * paired
    assert detectable_drop(estimate, paired) >= bound > estimate.min_detectable_drop
    warning = holdout_warning(estimate, 0.005, paired)
    assert f"this holdout (445 rows: 40 positives and 405 negatives) can detect AUC drops of {bound:.4f}" in warning
    assert "widen max_auc_drop to" in warning
    assert holdout_warning(estimate, round(bound + 0.001, 3), paired) is None
