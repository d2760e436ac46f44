"""Model quality: ROC AUC and its interval, the paired DeLong comparison, the smallest detectable drop, drift."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special, stats

# the smallest detectable drop: how often an equally good candidate must pass, and how alike the two models'
# AUC estimates are assumed to be (a retrain and its predecessor measure 0.997; see docs/explanation/gate.md)
POWER = 0.8
PAIRED_CORRELATION = 0.99


@dataclass(frozen=True)
class AucEstimate:
    """A ROC AUC with its DeLong standard error and two-sided confidence interval (on the logit scale)."""

    auc: float
    std_error: float
    ci_low: float
    ci_high: float
    confidence: float
    positives: int
    negatives: int

    @property
    def min_detectable_drop(self) -> float:
        """The smallest AUC drop that a gate at this confidence tells apart from none on this holdout."""
        return min_detectable_drop(self.auc, self.positives, self.negatives, self.confidence)

    def to_dict(self) -> dict:
        """Return the estimate as JSON-ready data."""
        return {**asdict(self), "min_detectable_drop": self.min_detectable_drop}


@dataclass(frozen=True)
class AucComparison:
    """The paired DeLong comparison of a candidate against a baseline on the same rows."""

    candidate: AucEstimate
    baseline: AucEstimate
    difference: float
    std_error: float
    lower_bound: float
    confidence: float

    def to_dict(self) -> dict:
        """Return the comparison as JSON-ready data."""
        return asdict(self)


def delong(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the AUCs of each row of ``scores`` and their DeLong covariance matrix.

    The fast O(n log n) algorithm of Sun and Xu (2014): mid-ranks replace the
    O(n^2) pairwise comparisons of DeLong, DeLong and Clarke-Pearson (1988).
    """
    y_true = np.asarray(y_true).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    positives, negatives = scores[:, y_true], scores[:, ~y_true]
    m, n = positives.shape[1], negatives.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"need at least 2 positive and 2 negative rows, got {m} and {n}")
    rank_pos = stats.rankdata(positives, axis=1)
    rank_neg = stats.rankdata(negatives, axis=1)
    rank_all = stats.rankdata(np.hstack([positives, negatives]), axis=1)
    aucs = (rank_all[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    v_pos = (rank_all[:, :m] - rank_pos) / n
    v_neg = 1.0 - (rank_all[:, m:] - rank_neg) / m
    covariance = np.atleast_2d(np.cov(v_pos)) / m + np.atleast_2d(np.cov(v_neg)) / n
    return aucs, covariance


def continuity_corrected(auc: float, positives: int, negatives: int) -> float:
    """The AUC moved half a pair towards 0.5, (m n AUC + 0.5) / (m n + 1), so that 0 and 1 have a finite logit."""
    pairs = positives * negatives
    return (pairs * auc + 0.5) / (pairs + 1)


def logit_interval(
    auc: float, variance: float, positives: int, negatives: int, confidence: float
) -> tuple[float, float]:
    """A two-sided interval for an AUC, symmetric on the logit scale (delta method), inside [0, 1], never zero-width."""
    corrected = continuity_corrected(auc, positives, negatives)
    spread = corrected * (1 - corrected)
    # the exact variance of an AUC is at least A (1 - A) / (m n); DeLong's estimate is 0 at an AUC of 0 or 1
    std_error = math.sqrt(max(variance, spread / (positives * negatives)))
    half_width = stats.norm.ppf(0.5 + confidence / 2) * std_error / spread
    centre = special.logit(corrected)
    low, high = float(special.expit(centre - half_width)), float(special.expit(centre + half_width))
    return min(low, auc), max(high, auc)


def _interval(auc: float, variance: float, y_true: np.ndarray, confidence: float) -> AucEstimate:
    """An AucEstimate from a DeLong AUC and variance."""
    positives = int(np.asarray(y_true).astype(bool).sum())
    negatives = len(y_true) - positives
    ci_low, ci_high = logit_interval(float(auc), variance, positives, negatives, confidence)
    return AucEstimate(float(auc), math.sqrt(max(variance, 0.0)), ci_low, ci_high, confidence, positives, negatives)


def hanley_mcneil_std_error(auc: float, positives: int, negatives: int) -> float:
    """Standard error of an AUC from its value and the class sizes alone (Hanley and McNeil, 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = auc * (1 - auc) + (negatives - 1) * (q2 - auc**2) + (positives - 1) * (q1 - auc**2)
    return math.sqrt(variance / (positives * negatives))


def min_detectable_drop(
    auc: float,
    positives: int,
    negatives: int,
    confidence: float = 0.95,
    power: float = POWER,
    correlation: float = PAIRED_CORRELATION,
) -> float:
    """The smallest AUC drop the gate tells apart from none on a holdout: (z_confidence + z_power) * SE(difference).

    SE(difference) is sqrt(2 (1 - correlation)) times the Hanley-McNeil standard error at the continuity-corrected
    AUC: two alike models whose AUC estimates correlate at ``correlation``. A margin ``max_auc_drop`` this large lets
    an equally good candidate pass with probability ``power``, and blocks one that much worse with ``confidence``.
    """
    std_error = hanley_mcneil_std_error(continuity_corrected(auc, positives, negatives), positives, negatives)
    z_sum = stats.norm.ppf(confidence) + stats.norm.ppf(power)
    return float(z_sum * math.sqrt(2 * (1 - correlation)) * std_error)


def detectable_drop(estimate: AucEstimate, paired_std_error: float | None = None) -> float:
    """The smallest AUC drop the gate tells apart from none: the model's figure, or the paired one when larger.

    ``paired_std_error`` is the standard error of the difference the gate actually measured (its paired DeLong);
    near AUC 1 the single-AUC figure shrinks towards 0 while the gate's own bound does not, so the larger one counts.
    """
    observed = (stats.norm.ppf(estimate.confidence) + stats.norm.ppf(POWER)) * (paired_std_error or 0.0)
    return max(estimate.min_detectable_drop, float(observed))


def holdout_warning(estimate: AucEstimate, max_auc_drop: float, paired_std_error: float | None = None) -> str | None:
    """A warning when the holdout cannot show non-inferiority at ``max_auc_drop``: what it can detect, and the fix."""
    drop = detectable_drop(estimate, paired_std_error)
    if drop <= max_auc_drop:
        return None
    rows = estimate.positives + estimate.negatives
    return (
        f"the holdout is too small for max_auc_drop = {max_auc_drop}: this holdout ({rows} rows: {estimate.positives} "
        f"positives and {estimate.negatives} negatives) can detect AUC drops of {drop:.4f} or more (one-sided "
        f"{estimate.confidence:.0%} confidence, {POWER:.0%} power), so it may block an equally good model; label "
        f"more rows, or widen max_auc_drop to {math.ceil(drop * 1000) / 1000:g}"
    )


def auc_estimate(y_true: np.ndarray, score: np.ndarray, confidence: float = 0.95) -> AucEstimate:
    """ROC AUC of one model with a two-sided DeLong confidence interval."""
    aucs, covariance = delong(y_true, score)
    return _interval(aucs[0], covariance[0, 0], y_true, confidence)


def compare_aucs(
    y_true: np.ndarray, candidate: np.ndarray, baseline: np.ndarray, confidence: float = 0.95
) -> AucComparison:
    """Paired DeLong comparison; ``lower_bound`` is the one-sided bound of AUC(candidate) - AUC(baseline)."""
    aucs, covariance = delong(y_true, np.vstack([candidate, baseline]))
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    std_error = math.sqrt(max(variance, 0.0))
    difference = float(aucs[0] - aucs[1])
    return AucComparison(
        candidate=_interval(aucs[0], covariance[0, 0], y_true, confidence),
        baseline=_interval(aucs[1], covariance[1, 1], y_true, confidence),
        difference=difference,
        std_error=std_error,
        lower_bound=difference - stats.norm.ppf(confidence) * std_error,
        confidence=confidence,
    )


def feature_profile(values: np.ndarray, bins: int = 10) -> dict:
    """Summarise one feature's distribution as quantile bin edges and the share of rows per bin."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.digitize(values, edges, right=True), minlength=len(edges) + 1)
    return {"edges": edges.tolist(), "shares": (counts / len(values)).tolist()}


def population_stability(profile: dict, values: np.ndarray) -> float:
    """Population stability index (PSI) of new values against a feature's training profile."""
    counts = np.bincount(np.digitize(values, profile["edges"], right=True), minlength=len(profile["shares"]))
    expected = np.clip(np.asarray(profile["shares"]), 1e-4, None)
    actual = np.clip(counts / len(values), 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
