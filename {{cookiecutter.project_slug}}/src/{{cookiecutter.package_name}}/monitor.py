"""Monitoring: a model's AUC on later labelled data against its deploy-time AUC, and input drift (PSI)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from . import artifact
from .config import Settings
from .data import read_csv
from .features import FEATURES, Feature
from .gate import AucEstimate, auc_estimate, literal

# below this many rows a week's PSI is mostly sampling noise (about (bins - 1) / rows = 0.02 at 500), not drift
MIN_DRIFT_ROWS = 500
# a table of checks: its columns (Check.cells, then a status) and, as printed, their widths
COLUMNS = ("version", "week", "rows", "positives", "AUC", "CI", "deployed", "p(drop)")
ROW = "{:<26}{:<10}{:>7}{:>10}  {:<6}  {:<16}  {:<8}  {:<7}  {}"


@dataclass(frozen=True)
class Deployed:
    """What a model version promised when it was deployed: its holdout AUC, and its training data's profile."""

    version: str
    auc: float
    std_error: float
    profile: dict

    @classmethod
    def of(cls, folder: Path) -> Deployed:
        """Read a model folder's metrics.json."""
        metrics = artifact.read_json(folder / artifact.METRICS_FILE)
        try:
            holdout = metrics["holdout"]
            return cls(folder.name, float(holdout["auc"]), float(holdout["std_error"]), dict(metrics["train_profile"]))
        except (KeyError, TypeError, ValueError) as error:
            raise artifact.ArtifactError(
                f"{folder / artifact.METRICS_FILE} lacks the holdout AUC or the training profile: {error}"
            ) from None


@dataclass(frozen=True)
class Check:
    """One model version on one batch of labelled rows: live AUC against the deploy-time AUC, and drift."""

    version: str
    period: str
    rows: int
    positives: int
    deployed_auc: float
    estimate: AucEstimate | None  # None with fewer than 2 rows of a class
    p_drop: float | None  # one-sided p-value of "the live AUC is not below the deploy-time AUC"
    psi: dict[str, float]
    alerts: tuple[str, ...]

    def cells(self) -> tuple:
        """The check's row of a table, as in COLUMNS: the AUC's cells are dashes with too few labels."""
        e, p_drop = self.estimate, "-" if self.p_drop is None else f"{self.p_drop:.3f}"
        auc, interval = (f"{e.auc:.4f}", f"{e.ci_low:.4f} to {e.ci_high:.4f}") if e else ("-", "too few labels")
        return self.version, self.period, self.rows, self.positives, auc, interval, f"{self.deployed_auc:.4f}", p_drop

    def lines(self) -> list[str]:
        """What `monitor` prints: the check as a table, its drift per feature, then ALERT lines or OK."""
        status = "ALERT" if self.alerts else "ok"
        lines = [f"production {self.version}", ROW.format(*COLUMNS, "").rstrip(), ROW.format(*self.cells(), status)]
        lines += [f"PSI {name}: {value:.3f}" for name, value in self.psi.items()]
        return lines + ([f"ALERT: {alert} ({self.period})" for alert in self.alerts] or ["OK: no retrain needed"])


def check(
    deployed: Deployed,
    period: str,
    y: np.ndarray,
    score: np.ndarray,
    X: np.ndarray,
    settings: Settings,
    features: tuple[Feature, ...] = FEATURES,
) -> Check:
    """Judge one batch: the floor, a significant drop below the deploy-time AUC, and drift per feature."""
    positives, gate = int(np.sum(y)), settings.gate
    estimate, p_drop, alerts = None, None, []
    if min(positives, len(y) - positives) >= 2:
        estimate = auc_estimate(y, score, gate.confidence)
        std_error = math.hypot(estimate.std_error, deployed.std_error)  # the two estimates come from independent rows
        if std_error:
            p_drop = float(stats.norm.cdf((estimate.auc - deployed.auc) / std_error))
        else:
            p_drop = float(estimate.auc >= deployed.auc)
        if estimate.auc < gate.min_auc:
            alerts.append(f"AUC {estimate.auc:.4f} is below the floor {gate.min_auc}")
        if p_drop < 1 - gate.confidence:
            alerts.append(
                f"AUC {estimate.auc:.4f} is significantly below its deploy-time {deployed.auc:.4f} (p = {p_drop:.3f})"
            )
    columns = zip(features, X.T, strict=True) if len(y) >= MIN_DRIFT_ROWS else ()
    psi = {f.name: population_stability(deployed.profile[f.name], x) for f, x in columns if f.name in deployed.profile}
    limit = settings.max_psi
    alerts += [f"{name} drifted: PSI {value:.3f} > {limit}" for name, value in psi.items() if value > limit]
    return Check(deployed.version, period, len(y), positives, deployed.auc, estimate, p_drop, psi, tuple(alerts))


def offline_report(folder: Path, period: str, data_csv: Path, settings: Settings) -> Check:
    """Check a model on labelled data it has not seen (e.g. a later week's holdout), as if it had served it."""
    model = artifact.load(folder)
    data = read_csv(data_csv, model.features)
    return check(Deployed.of(folder), period, data.y, model.probability(data.X), data.X, settings, model.features)


def markdown_table(checks: list[Check]) -> list[str]:
    """Checks as a Markdown table, each value literal, each status its alerts."""
    lines = ["| " + " | ".join((*COLUMNS, "status")) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    return lines + ["| " + " | ".join(map(literal, (*c.cells(), "; ".join(c.alerts) or "ok"))) + " |" for c in checks]


def write_outputs(report: Check, out_dir: Path) -> Path:
    """Write monitor.json and report.md into ``out_dir``; return the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"retrain_advised": bool(report.alerts), **asdict(report)}
    (out_dir / "monitor.json").write_text(json.dumps(written, indent=2) + "\n")
    verdict = "retrain advised" if report.alerts else "no retrain needed"
    alerts = [f"- ALERT: {literal(alert)}" for alert in report.alerts] or ["- every check of production holds"]
    path = out_dir / "report.md"
    path.write_text("\n".join([f"## Monitor: {verdict}", "", *alerts, "", *markdown_table([report])]) + "\n")
    return path


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
