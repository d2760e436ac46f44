"""Production monitoring: is the live model still good on newly labelled data, and has the input drifted?"""

from __future__ import annotations

from dataclasses import dataclass

from .artifact import LoadedModel
from .data import Dataset
from .evaluate import AucEstimate, auc_estimate, population_stability


@dataclass(frozen=True)
class MonitorReport:
    """The production model's AUC on new data and each feature's drift (PSI) since training."""

    estimate: AucEstimate
    psi: dict[str, float]
    min_auc: float
    max_psi: float

    @property
    def alerts(self) -> list[str]:
        """What calls for a retrain; empty when all is well."""
        found = [f"AUC {self.estimate.auc:.4f} is below the floor {self.min_auc}"] * (self.estimate.auc < self.min_auc)
        found += [
            f"{name} drifted: PSI {value:.3f} > {self.max_psi}"
            for name, value in self.psi.items()
            if value > self.max_psi
        ]
        return found

    def lines(self) -> list[str]:
        """A short human-readable report."""
        e = self.estimate
        lines = [f"AUC {e.auc:.4f} (95% CI {e.ci_low:.4f} to {e.ci_high:.4f}) on {e.positives + e.negatives} rows"]
        lines += [f"PSI {name}: {value:.3f}" for name, value in self.psi.items()]
        return lines + ([f"ALERT: {alert}" for alert in self.alerts] or ["OK: no retrain needed"])


def monitor(model: LoadedModel, profile: dict, data: Dataset, min_auc: float, max_psi: float) -> MonitorReport:
    """Score the model on labelled data and compare each feature with its training profile."""
    estimate = auc_estimate(data.y, model.probability(data.X))
    psi = {
        f.name: population_stability(profile[f.name], column)
        for f, column in zip(model.features, data.X.T, strict=True)
    }
    return MonitorReport(estimate, psi, min_auc, max_psi)
