"""The AUC gate: a floor, then non-inferiority against production or another baseline (paired DeLong)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import special, stats

from . import artifact
from .config import GateSettings
from .data import DataError, read_csv

# the smallest detectable drop: how often an equally good candidate passes, and how alike two models' AUC estimates
# are assumed to be (a retrain and its predecessor measure 0.997; see docs/explanation/gate.md)
POWER = 0.95
PAIRED_CORRELATION = 0.99
EXIT_CODES = {"pass": 0, "blocked": 1, "undecided": 2}
VERDICTS = {"pass": "PASSED", "blocked": "BLOCKED", "undecided": "BLOCKED (could not decide)"}


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

    def to_dict(self) -> dict:
        """Return the estimate, and the smallest drop its holdout can detect, as JSON-ready data."""
        return {**asdict(self), "min_detectable_drop": detectable_drop(self)}


@dataclass(frozen=True)
class AucComparison:
    """The paired DeLong comparison of a candidate against a baseline on the same rows."""

    candidate: AucEstimate
    baseline: AucEstimate
    difference: float
    std_error: float
    lower_bound: float
    confidence: float


def delong(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the AUCs of each row of ``scores`` and their DeLong covariance matrix (Sun and Xu's mid-rank method)."""
    y_true = np.asarray(y_true).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    positives, negatives = scores[:, y_true], scores[:, ~y_true]
    m, n = positives.shape[1], negatives.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"need at least 2 positive and 2 negative rows, got {m} and {n}")
    rank_all = stats.rankdata(np.hstack([positives, negatives]), axis=1)
    aucs = (rank_all[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    v_pos = (rank_all[:, :m] - stats.rankdata(positives, axis=1)) / n
    v_neg = 1.0 - (rank_all[:, m:] - stats.rankdata(negatives, axis=1)) / m
    return aucs, np.atleast_2d(np.cov(v_pos)) / m + np.atleast_2d(np.cov(v_neg)) / n


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
    low, high = special.expit(special.logit(corrected) + np.array([-half_width, half_width]))
    return min(float(low), auc), max(float(high), auc)


def _estimate(auc: float, variance: float, y_true: np.ndarray, confidence: float) -> AucEstimate:
    """An AucEstimate from a DeLong AUC and variance."""
    positives = int(np.asarray(y_true).astype(bool).sum())
    negatives = len(y_true) - positives
    low, high = logit_interval(float(auc), variance, positives, negatives, confidence)
    return AucEstimate(float(auc), math.sqrt(max(variance, 0.0)), low, high, confidence, positives, negatives)


def auc_estimate(y_true: np.ndarray, score: np.ndarray, confidence: float = 0.95) -> AucEstimate:
    """ROC AUC of one model with a two-sided DeLong confidence interval."""
    aucs, covariance = delong(y_true, score)
    return _estimate(aucs[0], covariance[0, 0], y_true, confidence)


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


def min_detectable_drop(
    auc: float, positives: int, negatives: int, confidence: float = 0.95, correlation: float = PAIRED_CORRELATION
) -> float:
    """The smallest AUC drop a gate at ``confidence`` tells apart from none with POWER, for two alike models."""
    # Hanley and McNeil's (1982) standard error of an AUC from the class sizes alone, at the continuity-corrected AUC
    a = continuity_corrected(auc, positives, negatives)
    q1, q2 = a / (2 - a), 2 * a**2 / (1 + a)
    variance = a * (1 - a) + (negatives - 1) * (q2 - a**2) + (positives - 1) * (q1 - a**2)
    std_error = math.sqrt(variance / (positives * negatives))
    # (z_confidence + z_power) * SE(difference), where SE(difference) = sqrt(2 (1 - correlation)) * SE(AUC)
    z_sum = stats.norm.ppf(confidence) + stats.norm.ppf(POWER)
    return float(z_sum * math.sqrt(2 * (1 - correlation)) * std_error)


def detectable_drop(estimate: AucEstimate, comparison: AucComparison | None = None) -> float:
    """The holdout's smallest detectable drop at ``estimate``'s AUC, or the one the gate measured when larger."""
    # the measured paired SE counts (near AUC 1 the model's own figure shrinks to 0) only for a candidate the holdout
    # cannot tell from an equally good one: a clearly better or worse one says nothing about an equal one
    alike = comparison is not None and abs(comparison.difference) <= stats.norm.ppf(0.975) * comparison.std_error
    z_sum = stats.norm.ppf(estimate.confidence) + stats.norm.ppf(POWER)
    own = min_detectable_drop(estimate.auc, estimate.positives, estimate.negatives, estimate.confidence)
    return max(own, float(z_sum * comparison.std_error) if alike else 0.0)


def holdout_warning(estimate: AucEstimate, max_auc_drop: float, comparison: AucComparison | None = None) -> str | None:
    """A warning when the holdout cannot show non-inferiority at ``max_auc_drop``: what it can detect, and the fix."""
    drop = detectable_drop(estimate, comparison)
    if drop <= max_auc_drop:
        return None
    rows = estimate.positives + estimate.negatives
    return (
        f"the holdout is too small for max_auc_drop = {max_auc_drop}: this holdout ({rows} rows: {estimate.positives} "
        f"positives and {estimate.negatives} negatives) can detect AUC drops of {drop:.4f} or more (one-sided "
        f"{estimate.confidence:.0%} confidence, {POWER:.0%} power), so it may block an equally good model; label "
        f"more rows, or widen max_auc_drop to {math.ceil(drop * 1000) / 1000:g}"
    )


@dataclass
class GateResult:
    """What the gate decided, why, and the numbers behind it."""

    decision: str
    reasons: list[str]
    settings: GateSettings
    candidate_version: str | None = None
    production_version: str | None = None
    candidate: AucEstimate | None = None
    comparison: AucComparison | None = None
    curves: dict = field(default_factory=dict, repr=False)
    note: str | None = None
    baseline: str = "production"
    warnings: list[str] = field(default_factory=list)
    min_detectable_drop: float | None = None
    scored_by: str = "the model file"  # where the candidate's scores came from: the file, or the staging service

    @property
    def exit_code(self) -> int:
        """0 pass, 1 blocked, 2 could not decide (which also blocks)."""
        return EXIT_CODES[self.decision]

    def to_dict(self) -> dict:
        """JSON-ready form, written as gate.json."""
        return {key: value for key, value in asdict(self).items() if key != "curves"} | {"exit_code": self.exit_code}


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


def run_gate(
    candidate_dir: Path,
    holdout_csv: Path,
    production_dir: Path | None,
    settings: GateSettings,
    library_upgrade: bool = False,
    baseline: str = "production",
    served: np.ndarray | None = None,
    scored_by: str = "the model file",
) -> GateResult:
    """Score candidate (or its ``served`` scores) and baseline on one holdout, and decide ('undecided' on errors)."""
    from sklearn.metrics import roc_curve  # here, not at the top: it takes half a second to import

    try:
        candidate = artifact.load(candidate_dir)
        production, note = _load_baseline(production_dir, library_upgrade, baseline)
        holdout = read_csv(holdout_csv, candidate.features)
        scores = candidate.probability(holdout.X) if served is None else served
        estimate = auc_estimate(holdout.y, scores, settings.confidence)
        comparison, curves = None, {"candidate": roc_curve(holdout.y, scores)[:2]}
        if production:
            production_scores = production.probability(read_csv(holdout_csv, production.features).X)
            comparison = compare_aucs(holdout.y, scores, production_scores, settings.confidence)
            curves["production"] = roc_curve(holdout.y, production_scores)[:2]
    except (artifact.ArtifactError, DataError, ValueError) as error:
        return GateResult("undecided", [f"could not decide: {error}"], settings, baseline=baseline, scored_by=scored_by)
    decision, reasons = decide(estimate, comparison, settings, baseline)
    reference = comparison.baseline if comparison else estimate  # the AUC a drop would be measured from
    warning = holdout_warning(reference, settings.max_auc_drop, comparison)
    return GateResult(
        decision,
        reasons,
        settings,
        candidate_version=candidate.version,
        production_version=production_dir.name if production_dir else None,
        candidate=estimate,
        comparison=comparison,
        curves=curves,
        note=note,
        baseline=baseline,
        warnings=[warning] if warning else [],
        min_detectable_drop=detectable_drop(reference, comparison),
        scored_by=scored_by,
    )


def _load_baseline(
    folder: Path | None, library_upgrade: bool, role: str
) -> tuple[artifact.LoadedModel | None, str | None]:
    """The model to compare with (None before the first deploy or across a declared library upgrade), and a note."""
    if folder is None:
        return None, "No production model yet: the floor alone decides (first deploy)."
    try:
        model = artifact.load(folder)
    except artifact.LibraryMismatch as mismatch:
        if library_upgrade:
            return None, (
                f"{role.capitalize()} {folder.name} was not compared: it was saved by another scikit-learn minor "
                "version (--library-upgrade), so the floor alone decides."
            )
        hint = "for a deliberate upgrade of scikit-learn, gate with --library-upgrade: the floor alone decides"
        raise artifact.ArtifactError(f"{role}: {mismatch} ({hint})") from None
    except artifact.ArtifactError as error:
        raise artifact.ArtifactError(f"{role}: {error}") from None
    against = f"Baseline: {folder} (gate --against), not the registry's production model."
    return model, None if role == "production" else against


def literal(text: object) -> str:
    """``text`` for a Markdown report: one line, and no HTML, link, image, code span or table cell made from it."""
    return re.sub(r"([<>\[\]|`\\])", r"\\\1", " ".join(str(text).split()))


def render_report(result: GateResult, plot: str | None = None) -> str:
    """The Markdown report CI puts in the job summary and the pull-request comment."""
    lines = [f"## AUC gate: {VERDICTS[result.decision]}", ""]
    # what the holdout cannot show comes before the decision it weakens
    lines += [f"> **Warning:** {literal(warning)}\n" for warning in result.warnings]
    lines += [f"- {literal(reason)}" for reason in result.reasons] or ["- every rule holds"]
    c, d = result.candidate, result.comparison
    if c:
        rows = [("candidate", result.candidate_version, c)]
        rows += [(result.baseline, result.production_version, d.baseline)] if d else []
        lines += ["", f"| model | version | AUC | {c.confidence:.0%} CI |", "|---|---|---|---|"]
        lines += [f"| {name} | {literal(v)} | {e.auc:.4f} | {e.ci_low:.4f} to {e.ci_high:.4f} |" for name, v, e in rows]
        if d:
            lines.append(
                f"\nDifference {d.difference:+.4f}, one-sided {d.confidence:.0%} lower bound {d.lower_bound:+.4f}"
            )
        if result.note:
            lines.append(f"\n{literal(result.note)}")
        lines.append(f"Holdout: {c.positives + c.negatives} rows, {c.positives} positives.")
        if result.scored_by != "the model file":
            lines.append(f"Candidate scores: as {literal(result.scored_by)} answered them.")
    lines.append(f"Thresholds: min_auc = {result.settings.min_auc}, max_auc_drop = {result.settings.max_auc_drop}.")
    return "\n".join(lines + (["", f"![ROC curves]({plot})"] if plot else [])) + "\n"


def write_outputs(result: GateResult, out_dir: Path) -> Path:
    """Write gate.json, report.md and roc.png (both ROC curves) into ``out_dir``; return the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gate.json").write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    if result.curves:
        from matplotlib.figure import Figure  # here, not at the top: it is slow to import

        figure = Figure(figsize=(4.5, 4.5), dpi=100, layout="tight")
        axes = figure.subplots()
        for name, (fpr, tpr) in result.curves.items():  # false and true positive rates
            axes.plot(fpr, tpr, label=name)
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
        axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the holdout")
        axes.legend(loc="lower right")
        figure.savefig(out_dir / "roc.png")
    report = out_dir / "report.md"
    report.write_text(render_report(result, "roc.png" if result.curves else None))
    return report
