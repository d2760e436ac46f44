"""Model quality: ROC AUC with a DeLong confidence interval, the paired DeLong comparison, drift."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class AucEstimate:
    """A ROC AUC with its DeLong standard error and two-sided confidence interval."""

    auc: float
    std_error: float
    ci_low: float
    ci_high: float
    confidence: float
    positives: int
    negatives: int

    def to_dict(self) -> dict:
        """Return the estimate as JSON-ready data."""
        return asdict(self)


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


def _interval(auc: float, variance: float, y_true: np.ndarray, confidence: float) -> AucEstimate:
    """An AucEstimate from a DeLong AUC and variance."""
    std_error = math.sqrt(max(variance, 0.0))
    half_width = stats.norm.ppf(0.5 + confidence / 2) * std_error
    positives = int(np.asarray(y_true).astype(bool).sum())
    return AucEstimate(
        auc=float(auc),
        std_error=std_error,
        ci_low=max(0.0, auc - half_width),
        ci_high=min(1.0, auc + half_width),
        confidence=confidence,
        positives=positives,
        negatives=len(y_true) - positives,
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
