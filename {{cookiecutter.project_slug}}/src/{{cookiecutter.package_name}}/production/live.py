"""The live monitor: AUC per model version and week of labelled live rows, against each version's deploy-time AUC."""

from __future__ import annotations

from .. import artifact
from ..config import Settings
from ..features import FEATURES, Feature
from ..monitor import Deployed, MonitorReport, check
from ..registry import Registry, RegistryError
from .feedback import Labelled


def live_report(
    registry: Registry, labelled: Labelled, settings: Settings, features: tuple[Feature, ...] = FEATURES
) -> MonitorReport:
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
            checks.append(check(deployed, week, batch.y, batch.score, batch.X, settings, features))
    checks.sort(key=lambda c: (c.period, c.version))
    return MonitorReport(registry.current("production"), checks, notes)
