def compare_aucs(
    y_true: np.ndarray, candidate: np.ndarray, baseline: np.ndarray, confidence: float = 0.95
) -> AucComparison:
    """Paired DeLong comparison; ``lower_bound`` is the one-sided bound of AUC(candidate) - AUC(baseline)."""
    aucs, covariance = delong(y_true, np.vstack([candidate, baseline]))
    difference = float(aucs[0] - aucs[1])
    std_error = math.sqrt(max(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1], 0.0))
    return AucComparison(
        candidate=_estimate(aucs[0], covariance[0, 0], y_true, confidence),
        baseline=_estimate(aucs[1], covariance[1, 1], y_true, confidence),
        difference=difference,
        std_error=std_error,
        lower_bound=difference - stats.norm.ppf(confidence) * std_error,
        confidence=confidence,
    )
