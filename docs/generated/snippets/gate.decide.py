def decide(
    candidate: AucEstimate, comparison: AucComparison | None, settings: GateSettings, baseline: str = "production"
) -> tuple[str, list[str]]:
    """Apply the two rules; with no production model (comparison None) the floor alone decides."""
    reasons = []
    if candidate.auc < settings.min_auc:
        reasons.append(f"AUC {candidate.auc:.4f} is below the floor min_auc = {settings.min_auc}")
    # written so that a NaN bound blocks: the gate must fail closed
    if comparison is not None and not comparison.lower_bound > -settings.max_auc_drop:
        reasons.append(
            f"AUC may be worse than {baseline} by more than max_auc_drop = {settings.max_auc_drop}: "
            f"difference {comparison.difference:+.4f}, "
            f"{settings.confidence:.0%} lower bound {comparison.lower_bound:+.4f}"
        )
    return ("blocked" if reasons else "pass"), reasons
