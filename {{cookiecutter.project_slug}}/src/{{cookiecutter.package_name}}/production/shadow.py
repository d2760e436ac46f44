"""The shadow model: a second model scoring every row beside the served one, for the prediction log only."""

from __future__ import annotations

import threading
import time

import numpy as np

from .. import artifact
from ..registry import Registry, RegistryError

CHOICES = ("staging", "previous")  # the staging model, or the production version the current one replaced


class Shadow:
    """Follows the shadow's place in the registry and scores rows with it; every failure is logged, counted, ignored."""

    def __init__(self, registry: Registry, which: str, interval: float, log, metrics) -> None:
        """Load the shadow now, then look for a new one at most once per ``interval`` seconds, in the background."""
        self.registry, self.which, self.interval, self.log, self.metrics = registry, which, interval, log, metrics
        self.model: artifact.LoadedModel | None = None
        self.names: list[str] = []
        self._target: str | None = None
        self._checked = time.monotonic()
        self._refreshing = threading.Lock()
        self._last_error = ""
        self.refresh()

    @classmethod
    def start(cls, registry: Registry, which: str, interval: float, log, metrics) -> Shadow | None:
        """A shadow, or None (logged) when MODEL_SHADOW names none of the choices."""
        if which not in CHOICES:
            log.error("MODEL_SHADOW must be empty, off, %s; got %r: no shadow", " or ".join(CHOICES), which)
            return None
        return cls(registry, which, interval, log, metrics)

    def target(self) -> str | None:
        """The version the shadow should be now, or None when there is none."""
        if self.which == "staging":
            return self.registry.current("staging")
        try:
            return self.registry.previous_production()
        except RegistryError:  # production replaced nothing (yet): no shadow
            return None

    def refresh(self) -> None:
        """Load the target version if it changed; a model that fails to load is counted and the old one kept."""
        try:
            version = self.target()
            if version == self._target:
                return
            self._target = version
            if version is None:
                self.model, self.names = None, []
                self.metrics.served("shadow", None)
                return
            model = artifact.load(self.registry.folder(version))
        except (OSError, RegistryError, artifact.ArtifactError, KeyError, TypeError, ValueError) as error:
            self.metrics.count_shadow_failure("load")
            self._report(f"shadow ({self.which}) not loaded: {error}")
            return
        self.model, self.names = model, [feature.name for feature in model.features]
        self.metrics.served("shadow", version)
        self.log.info("shadow (%s): scoring with model %s", self.which, version)

    def _refresh_due(self) -> None:
        """Start a background refresh when the interval has passed and none is running."""
        if time.monotonic() - self._checked < self.interval or not self._refreshing.acquire(blocking=False):
            return
        self._checked = time.monotonic()

        def refresh_then_release() -> None:
            try:
                self.refresh()
            finally:
                self._refreshing.release()

        threading.Thread(target=refresh_then_release, name="shadow-refresh", daemon=True).start()

    def scores(self, version: str, rows: list, answer: list[float]) -> tuple[str | None, list[float] | None]:
        """The shadow's version and its scores for ``rows`` (the answer itself when the shadow is the served model)."""
        self._refresh_due()
        model, names = self.model, self.names
        if model is None:
            return None, None
        if model.version == version:
            return version, answer
        try:
            matrix = np.array([[row[name] for name in names] for row in rows], dtype=float).reshape(len(rows), -1)
            return model.version, model.probability(matrix).round(6).tolist()
        except Exception as error:  # a model can raise anything; the answer is already computed and stays as it is
            self.metrics.count_shadow_failure("score")
            self._report(f"shadow model {model.version} cannot score: {error}")
            return model.version, None

    def _report(self, message: str) -> None:
        """Log a failure once, not on every request or check while it lasts."""
        if message != self._last_error:
            self.log.error("%s", message)
        self._last_error = message
