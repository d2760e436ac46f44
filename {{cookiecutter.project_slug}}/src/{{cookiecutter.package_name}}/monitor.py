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
# the report's table: one row per check (Check.cells), then its status
COLUMNS = ("version", "week", "rows", "positives", "AUC", "CI", "deployed", "p(drop)")


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
        """The check's row of the report's table, as in COLUMNS: the AUC's cells are dashes with too few labels."""
        e = self.estimate
        auc, interval = (f"{e.auc:.4f}", f"{e.ci_low:.4f} to {e.ci_high:.4f}") if e else ("-", "too few labels")
        p_drop = "-" if self.p_drop is None else f"{self.p_drop:.3f}"
        return self.version, self.period, self.rows, self.positives, auc, interval, f"{self.deployed_auc:.4f}", p_drop


def drop_p_value(live: AucEstimate, deployed: Deployed) -> float:
    """One-sided p-value that live AUC >= deploy-time AUC; the two estimates come from independent rows."""
    std_error = math.hypot(live.std_error, deployed.std_error)
    if std_error == 0:
        return 0.0 if live.auc < deployed.auc else 1.0
    return float(stats.norm.cdf((live.auc - deployed.auc) / std_error))


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
        p_drop = drop_p_value(estimate, deployed)
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


@dataclass(frozen=True)
class MonitorReport:
    """Every check, and which version is in production: only production's alerts advise a retrain."""

    production: str | None
    checks: list[Check]
    notes: list[str]

    @property
    def alerts(self) -> list[str]:
        """Production's alerts, each naming its week; empty when all is well."""
        return [f"{alert} ({c.period})" for c in self.checks if c.version == self.production for alert in c.alerts]

    def lines(self) -> list[str]:
        """The notes, a table of the checks (oldest week first), production's latest drift, then ALERT lines or OK."""
        row = "{:<26}{:<10}{:>7}{:>10}  {:<6}  {:<16}  {:<8}  {:<7}  {}"
        table = [row.format(*COLUMNS, "")]
        table += [row.format(*c.cells(), "ALERT" if c.alerts else "ok") for c in self.checks]
        lines = [*self.notes, f"production {self.production or '(none)'}", *(line.rstrip() for line in table)]
        latest = [c for c in self.checks if c.version == self.production and c.psi]
        if latest:
            lines += [f"PSI {name}: {value:.3f}" for name, value in latest[-1].psi.items()]
        return lines + ([f"ALERT: {alert}" for alert in self.alerts] or ["OK: no retrain needed"])

    def to_dict(self) -> dict:
        """JSON-ready form, written as monitor.json."""
        return {"retrain_advised": bool(self.alerts), "alerts": self.alerts, **asdict(self)}


def offline_report(folder: Path, period: str, data_csv: Path, settings: Settings) -> MonitorReport:
    """Check a model on labelled data it has not seen (e.g. a later week's holdout), as if it had served it."""
    model = artifact.load(folder)
    data = read_csv(data_csv, model.features)
    result = check(Deployed.of(folder), period, data.y, model.probability(data.X), data.X, settings, model.features)
    return MonitorReport(model.version, [result], [])


def render_report(report: MonitorReport, plot: str | None = None) -> str:
    """The Markdown report CI puts in the job summary and the alert issue."""
    verdict = "retrain advised" if report.alerts else "no retrain needed"
    lines = [f"## Monitor: {verdict}", "", f"Production: `{literal(report.production or '(none)')}`", ""]
    lines += [f"- ALERT: {literal(alert)}" for alert in report.alerts] or ["- every check of production holds"]
    lines += ["", "| " + " | ".join((*COLUMNS, "status")) + " |", "|---" * 9 + "|"]
    cells = ((*c.cells(), "; ".join(c.alerts) or "ok") for c in report.checks)
    lines += ["| " + " | ".join(map(literal, row)) + " |" for row in cells]
    lines += ["", *(f"{literal(note)}." for note in report.notes)]
    if plot:
        lines += ["", f"![Live AUC by week]({plot})"]
    return "\n".join(lines) + "\n"


def write_outputs(report: MonitorReport, out_dir: Path) -> Path:
    """Write monitor.json, report.md and trend.png into ``out_dir``; return the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "monitor.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    plotted = any(c.estimate for c in report.checks)
    if plotted:
        plot(report, out_dir / "trend.png")
    path = out_dir / "report.md"
    path.write_text(render_report(report, "trend.png" if plotted else None))
    return path


def plot(report: MonitorReport, path: Path) -> None:
    """Draw live AUC by week for each version, with its interval and its deploy-time AUC, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    periods = sorted({c.period for c in report.checks})
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    for version in dict.fromkeys(c.version for c in report.checks):
        shown = [c for c in report.checks if c.version == version and c.estimate]
        if not shown:
            continue
        x = np.array([periods.index(c.period) for c in shown])
        auc, low, high = np.array([(c.estimate.auc, c.estimate.ci_low, c.estimate.ci_high) for c in shown]).T
        line = axes.errorbar(x, auc, yerr=[auc - low, high - auc], marker="o", capsize=3, label=version)
        deployed, color = shown[0].deployed_auc, line.lines[0].get_color()
        axes.hlines(deployed, x.min() - 0.3, x.max() + 0.3, colors=color, linestyles="dashed")
        alerted = [bool(c.alerts) for c in shown]
        axes.scatter(x[alerted], auc[alerted], s=120, facecolors="none", edgecolors="red", zorder=3)
    axes.set_xticks(range(len(periods)), periods, rotation=45, ha="right")
    axes.set(ylabel="live AUC (dashed: deploy-time)", title="Live AUC by week; red circles: alerts")
    axes.legend(fontsize="small", loc="lower left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


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
