"""The live monitor: AUC per model version and week of labelled live rows, against each version's deploy-time AUC."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import artifact
from ..config import Settings
from ..gate import literal
from ..monitor import COLUMNS, ROW, Check, Deployed, check, markdown_table
from ..registry import Registry, RegistryError
from .feedback import Labelled


@dataclass(frozen=True)
class LiveReport:
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
        table = [ROW.format(*COLUMNS, "")] + [
            ROW.format(*c.cells(), "ALERT" if c.alerts else "ok") for c in self.checks
        ]
        lines = [*self.notes, f"production {self.production or '(none)'}", *(line.rstrip() for line in table)]
        latest = [c for c in self.checks if c.version == self.production and c.psi]
        if latest:
            lines += [f"PSI {name}: {value:.3f}" for name, value in latest[-1].psi.items()]
        return lines + ([f"ALERT: {alert}" for alert in self.alerts] or ["OK: no retrain needed"])


def live_report(registry: Registry, labelled: Labelled, settings: Settings) -> LiveReport:
    """Check every model version on every week of labelled live rows it scored."""
    notes = [labelled.summary()]
    checks = []
    for version in sorted(set(labelled.model_version)):
        rows = labelled.select(labelled.model_version == version)
        try:
            deployed = Deployed.of(registry.folder(version))
        except (artifact.ArtifactError, RegistryError) as error:
            notes.append(f"left out {len(rows)} rows of {version}: {error}")
            continue
        for week in sorted(set(rows.week)):
            batch = rows.select(rows.week == week)
            checks.append(check(deployed, week, batch.y, batch.score, batch.X, settings))
    checks.sort(key=lambda c: (c.period, c.version))
    return LiveReport(registry.current("production"), checks, notes)


def write_outputs(report: LiveReport, out_dir: Path) -> Path:
    """Write monitor.json, report.md and trend.png into ``out_dir``; return the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"retrain_advised": bool(report.alerts), "alerts": report.alerts, **asdict(report)}
    (out_dir / "monitor.json").write_text(json.dumps(written, indent=2) + "\n")
    verdict = "retrain advised" if report.alerts else "no retrain needed"
    lines = [f"## Monitor: {verdict}", "", f"Production: `{literal(report.production or '(none)')}`", ""]
    lines += [f"- ALERT: {literal(alert)}" for alert in report.alerts] or ["- every check of production holds"]
    lines += ["", *markdown_table(report.checks), "", *(f"{literal(note)}." for note in report.notes)]
    if any(c.estimate for c in report.checks):
        plot(report.checks, out_dir / "trend.png")
        lines += ["", "![Live AUC by week](trend.png)"]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def plot(checks: list[Check], path: Path) -> None:
    """Draw live AUC by week for each version, with its interval and its deploy-time AUC, as a PNG."""
    from matplotlib.figure import Figure  # here, not at the top: it is slow to import

    periods = sorted({c.period for c in checks})
    figure = Figure(figsize=(7, 4), dpi=100, layout="tight")
    axes = figure.subplots()
    for version in dict.fromkeys(c.version for c in checks):
        shown = [c for c in checks if c.version == version and c.estimate]
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
    figure.savefig(path)
