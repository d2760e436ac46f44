"""The AUC gate: an absolute floor, then non-inferiority against production or another baseline (paired DeLong)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from . import artifact
from .config import GateSettings
from .data import DataError, read_csv
from .evaluate import AucComparison, AucEstimate, auc_estimate, compare_aucs, detectable_drop, holdout_warning

EXIT_CODES = {"pass": 0, "blocked": 1, "undecided": 2}


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
        data = asdict(self)
        data.pop("curves")
        return {**data, "exit_code": self.exit_code}


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
    """Score candidate and production on the same holdout and decide; errors give 'undecided'.

    With ``library_upgrade``, a production model saved by another scikit-learn minor version (which cannot be
    loaded here) is left out and the floor alone decides; the report says so. Nothing else is skipped.
    With ``baseline="baseline"``, ``production_dir`` is any model folder to compare with (``gate --against``).
    ``served``: the candidate's scores of the holdout as a service answered them (``scored_by`` says which), judged
    instead of the model file's own.
    """
    note = None if production_dir else "No production model yet: the floor alone decides (first deploy)."
    if production_dir and baseline != "production":
        note = f"Baseline: {production_dir} (gate --against), not the registry's production model."
    try:
        candidate = artifact.load(candidate_dir)
        production = _load_production(production_dir, library_upgrade, baseline)
        if production_dir and production is None:
            note = (
                f"{baseline.capitalize()} {production_dir.name} was not compared: it was saved by another "
                "scikit-learn minor version (--library-upgrade), so the floor alone decides."
            )
        holdout = read_csv(holdout_csv, candidate.features)
        candidate_scores = candidate.probability(holdout.X) if served is None else served
        estimate = auc_estimate(holdout.y, candidate_scores, settings.confidence)
        comparison, curves = None, {"candidate": _roc(holdout.y, candidate_scores)}
        if production:
            production_scores = production.probability(read_csv(holdout_csv, production.features).X)
            comparison = compare_aucs(holdout.y, candidate_scores, production_scores, settings.confidence)
            curves["production"] = _roc(holdout.y, production_scores)
    except (artifact.ArtifactError, DataError, ValueError) as error:
        return GateResult("undecided", [f"could not decide: {error}"], settings, baseline=baseline, scored_by=scored_by)
    decision, reasons = decide(estimate, comparison, settings, baseline)
    # how small a drop this holdout can show, at the AUC a drop would be measured from
    reference = comparison.baseline if comparison else estimate
    # the measured paired SE speaks for a candidate this holdout cannot tell from an equally good one (the two-sided
    # interval of the difference holds 0); a clearly better or worse one says nothing of an equally good one's fate
    alike = comparison is not None and abs(comparison.difference) <= stats.norm.ppf(0.975) * comparison.std_error
    paired = comparison.std_error if alike else None
    warning = holdout_warning(reference, settings.max_auc_drop, paired)
    production_version = production_dir.name if production_dir else None
    return GateResult(
        decision,
        reasons,
        settings,
        candidate.version,
        production_version,
        estimate,
        comparison,
        curves,
        note,
        baseline,
        [warning] if warning else [],
        detectable_drop(reference, paired),
        scored_by,
    )


def _load_production(folder: Path | None, library_upgrade: bool, role: str) -> artifact.LoadedModel | None:
    """The model to compare with; None before the first deploy, or when an upgrade of scikit-learn is declared."""
    if folder is None:
        return None
    try:
        return artifact.load(folder)
    except artifact.LibraryMismatch as mismatch:
        if library_upgrade:
            return None
        hint = "for a deliberate upgrade of scikit-learn, gate with --library-upgrade: the floor alone decides"
        raise artifact.ArtifactError(f"{role}: {mismatch} ({hint})") from None
    except artifact.ArtifactError as error:
        raise artifact.ArtifactError(f"{role}: {error}") from None


def _roc(y_true: np.ndarray, scores: np.ndarray) -> tuple[list[float], list[float]]:
    """False and true positive rates for a ROC plot."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y_true, scores)
    return fpr.tolist(), tpr.tolist()


def write_outputs(result: GateResult, out_dir: Path) -> Path:
    """Write gate.json, report.md and roc.png into ``out_dir``; return the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gate.json").write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    if result.curves:
        _plot(result, out_dir / "roc.png")
    report = out_dir / "report.md"
    report.write_text(render_report(result, "roc.png" if result.curves else None))
    return report


def render_report(result: GateResult, plot: str | None = None) -> str:
    """The Markdown report CI puts in the job summary and the pull-request comment."""
    verdict = {"pass": "PASSED", "blocked": "BLOCKED", "undecided": "BLOCKED (could not decide)"}[result.decision]
    s = result.settings
    lines = [f"## AUC gate: {verdict}", ""]
    # what the holdout cannot show comes before the decision it weakens
    lines += [f"> **Warning:** {warning}\n" for warning in result.warnings]
    lines += [f"- {reason}" for reason in result.reasons] or ["- every rule holds"]
    if result.candidate:
        c = result.candidate
        lines += ["", f"| model | version | AUC | {c.confidence:.0%} CI |", "|---|---|---|---|"]
        lines.append(f"| candidate | {result.candidate_version} | {c.auc:.4f} | {c.ci_low:.4f} to {c.ci_high:.4f} |")
        if result.comparison:
            p, d = result.comparison.baseline, result.comparison
            lines.append(
                f"| {result.baseline} | {result.production_version} | {p.auc:.4f} | {p.ci_low:.4f} to {p.ci_high:.4f} |"
            )
            lines += [
                "",
                f"Difference {d.difference:+.4f}, one-sided {d.confidence:.0%} lower bound {d.lower_bound:+.4f}",
            ]
        if result.note:
            lines += ["", result.note]
        lines.append(f"Holdout: {c.positives + c.negatives} rows, {c.positives} positives.")
        if result.scored_by != "the model file":
            lines.append(f"Candidate scores: as {result.scored_by} answered them.")
    lines.append(f"Thresholds: min_auc = {s.min_auc}, max_auc_drop = {s.max_auc_drop}.")
    if plot:
        lines += ["", f"![ROC curves]({plot})"]
    return "\n".join(lines) + "\n"


def _plot(result: GateResult, path: Path) -> None:
    """Draw both ROC curves as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    for name, (fpr, tpr) in result.curves.items():
        axes.plot(fpr, tpr, label=name)
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the holdout")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
