"""The shadow model: a second model scoring every logged row beside the served one, in the log's writer thread."""

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

    def fill(self, batch: list) -> list:
        """The gathered requests (``Scored`` records) with the shadow's version and scores, in one model call.

        Called by the prediction log's writer, off the request path: per call, scikit-learn's checks cost more than
        the arithmetic, so scoring a gathering of requests at once costs about what one request would.
        """
        self._refresh_due()
        model, names = self.model, self.names
        if model is None:
            return batch
        # a shadow that is the served model logs the answer itself as its score
        filled = [scored._replace(shadow_version=model.version, shadow_scores=scored.scores) for scored in batch]
        todo = [index for index, scored in enumerate(batch) if scored.model_version != model.version]
        if not todo:
            return filled
        rows = [row for index in todo for row in batch[index].rows]
        try:
            matrix = np.array([[row[name] for name in names] for row in rows], dtype=float).reshape(len(rows), -1)
            scores = model.probability(matrix).round(6).tolist()
        except Exception as error:  # a model can raise anything; the answers were sent long ago and stay as they are
            for index in todo:
                self.metrics.count_shadow_failure("score")
                filled[index] = filled[index]._replace(shadow_scores=None)
            self._report(f"shadow model {model.version} cannot score: {error}")
            return filled
        start = 0
        for index in todo:
            end = start + len(batch[index].rows)
            filled[index], start = filled[index]._replace(shadow_scores=scores[start:end]), end
        return filled

    def _report(self, message: str) -> None:
        """Log a failure once, not on every request or check while it lasts."""
        if message != self._last_error:
            self.log.error("%s", message)
        self._last_error = message
