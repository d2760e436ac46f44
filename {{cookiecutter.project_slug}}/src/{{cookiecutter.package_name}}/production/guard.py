"""The guard: after a promotion, the gate's paired DeLong test on live labelled rows; roll back a worse model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from ..config import GateSettings
from ..gate import AucComparison, compare_aucs, literal
from ..registry import Registry, RegistryError
from .feedback import Labelled

# 0: production confirmed, still watched after its confirmation, or nothing to guard; 1: rolled back (or, with
# act=False, must be); 3: waiting for labels
EXIT_CODES = {"confirm": 0, "watch": 0, "idle": 0, "rollback": 1, "wait": 3}


@dataclass
class GuardResult:
    """What the guard decided about the latest promotion, why, and the live numbers behind it."""

    decision: str  # "rollback", "confirm", "wait", "watch" (confirmed before, still not worse) or "idle"
    reasons: list[str]
    settings: GateSettings
    min_rows: int
    production: str | None = None
    replaced: str | None = None
    rows: int = 0
    positives: int = 0
    comparison: AucComparison | None = None  # production (candidate) against the version it replaced (baseline)
    confirmed: str | None = None  # when this promotion was confirmed, while the guard still watches it
    acted: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 confirmed or nothing to do, 1 rollback, 3 waiting for more labelled rows."""
        return EXIT_CODES[self.decision]

    @property
    def upper_bound(self) -> float | None:
        """The one-sided upper confidence bound of AUC(production) - AUC(replaced)."""
        c = self.comparison
        return None if c is None else c.difference + (c.difference - c.lower_bound)

    def evidence(self) -> str:
        """One line for the registry's history: the live numbers that decided."""
        c = self.comparison
        bound = f"upper bound {self.upper_bound:+.4f}"
        if self.decision != "rollback":
            bound = f"lower bound {c.lower_bound:+.4f}"
        return (
            f"guard: on {self.rows} live rows ({self.positives} positives) AUC {c.candidate.auc:.4f} against "
            f"{c.baseline.auc:.4f} for {self.replaced}: difference {c.difference:+.4f}, {c.confidence:.0%} {bound}, "
            f"max_auc_drop {self.settings.max_auc_drop}"
        )

    def to_dict(self) -> dict:
        """JSON-ready form, written as guard.json."""
        evidence = self.evidence() if self.comparison else None
        return {**asdict(self), "upper_bound": self.upper_bound, "evidence": evidence, "exit_code": self.exit_code}


def guarded(registry: Registry, watch_days: int, now: datetime) -> tuple[str | None, str | None, str | None, str]:
    """(production, the version it replaced, its confirmation's time or None, "") to guard, or (..., None, why not).

    A confirmation is not final: the guard goes on judging the promotion for ``watch_days`` days after it.
    """
    production, confirmed = registry.current("production"), None
    for entry in reversed(registry.history()):
        if entry["stage"] != "production" or (entry["action"] == "promote" and entry["from"] == entry["to"]):
            continue
        if entry["to"] != production:
            return production, None, None, f"production {production} is not where the history's last move left it"
        if entry["action"] == "confirm":
            confirmed = entry["time"]  # read backwards: the last one kept is this promotion's first confirmation
            continue
        if entry["action"] == "rollback":
            return production, None, None, f"production {production} was restored by a rollback: nothing to guard"
        if entry["action"] == "promote" and entry["from"]:
            if confirmed and now >= watched_until(confirmed, watch_days):
                end = watched_until(confirmed, watch_days).isoformat()
                return production, None, None, f"production {production} was confirmed on {confirmed}, watched to {end}"
            return production, entry["from"], confirmed, ""
        break
    return production, None, None, f"production {production or '(none)'} replaced no earlier version: nothing to guard"


def watched_until(confirmed: str, watch_days: int) -> datetime:
    """The end of the watch that follows a confirmation recorded at ``confirmed`` (an ISO time of the history)."""
    try:
        moment = datetime.fromisoformat(confirmed)
    except (TypeError, ValueError):
        shown = str(confirmed)[:40]
        raise RegistryError(f"a confirmation in the registry's history has no ISO time: {shown!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)) + timedelta(days=watch_days)


def decide(
    y: np.ndarray, score: np.ndarray, replaced_score: np.ndarray, settings: GateSettings, min_rows: int
) -> tuple[str, AucComparison | None, str]:
    """The gate's paired DeLong comparison both ways: roll back on evidence of harm, confirm on evidence of none."""
    positives = int(np.sum(y))
    if len(y) < max(min_rows, 1) or min(positives, len(y) - positives) < 2:
        return "wait", None, f"{len(y)} labelled live rows ({positives} positives) of the {min_rows} needed"
    comparison = compare_aucs(y, score, replaced_score, settings.confidence)
    upper_bound = comparison.difference + (comparison.difference - comparison.lower_bound)
    margin, level = settings.max_auc_drop, f"{settings.confidence:.0%}"
    by_margin = f"than the replaced model by more than max_auc_drop = {margin} ({level} confidence)"
    # written so that NaN bounds wait: neither rule can fire on them
    if upper_bound < -margin:
        return "rollback", comparison, f"worse {by_margin}"
    if comparison.lower_bound > -margin:
        return "confirm", comparison, f"not worse {by_margin}"
    return "wait", comparison, f"not yet sure either way at {level} confidence: the interval still straddles -{margin}"


def run_guard(
    registry: Registry,
    labelled: Labelled,
    settings: GateSettings,
    min_rows: int,
    watch_days: int = 30,
    now: datetime | None = None,
) -> GuardResult:
    """Decide about the latest promotion from the live rows both models scored; change nothing."""
    now = now or datetime.now(timezone.utc)
    production, replaced, confirmed, idle = guarded(registry, watch_days, now)
    result = GuardResult("idle", [idle], settings, min_rows, production, replaced, confirmed=confirmed)
    result.notes = [labelled.summary()]
    if replaced is None:
        return result
    both = (labelled.model_version == production) & (labelled.shadow_version == replaced)
    rows = labelled.select(both & np.isfinite(labelled.shadow_score))
    result.rows, result.positives = len(rows), int(rows.y.sum())
    result.decision, result.comparison, reason = decide(rows.y, rows.score, rows.shadow_score, settings, min_rows)
    result.reasons = [reason]
    if not len(rows):
        served = int(np.sum(labelled.model_version == production))
        if served:  # labels came back, but for rows no shadow scored
            result.reasons.append(f"none of {served} labelled rows of {production} has a shadow score of {replaced}")
            result.reasons.append("serve with --shadow previous, so that the service scores each row with both")
        else:
            result.reasons.append(f"no label has arrived yet for a row {production} scored")
    if confirmed:
        result.decision = "watch" if result.decision == "confirm" else result.decision
        end = watched_until(confirmed, watch_days).isoformat()
        result.reasons.append(f"confirmed on {confirmed}; watched until {end} (guard_watch_days = {watch_days})")
    return result


def act(registry: Registry, result: GuardResult, rollback: bool = True) -> GuardResult:
    """Carry the decision out: roll back to the replaced version, or record a first confirmation in the history."""
    if result.decision == "rollback" and rollback:
        registry.rollback(to=result.replaced, reason=result.evidence())
        result.acted = True
    elif result.decision == "confirm":
        registry.note("confirm", "production", result.production, result.evidence())
        result.acted = True
    return result


def render_report(result: GuardResult) -> str:
    """The Markdown report: decision, both models' live AUC, the difference and its bounds."""
    title = {"rollback": "ROLLED BACK" if result.acted else "ROLLBACK NEEDED", "confirm": "CONFIRMED"}
    title.update(wait="WAITING", watch="WATCHING", idle="NOTHING TO GUARD")
    lines = [f"## Guard: {title[result.decision]}"]
    lines += ["", *(f"- {literal(reason)}" for reason in result.reasons)]
    c = result.comparison
    if c is not None:
        lines += ["", f"| model | version | live AUC | {c.confidence:.0%} CI |", "|---|---|---|---|"]
        rows = (("production", result.production, c.candidate), ("replaced", result.replaced, c.baseline))
        for role, version, e in rows:
            lines.append(f"| {role} | {literal(version)} | {e.auc:.4f} | {e.ci_low:.4f} to {e.ci_high:.4f} |")
        lines += [
            "",
            f"Difference {c.difference:+.4f}; one-sided {c.confidence:.0%} bounds {c.lower_bound:+.4f} (lower) and "
            f"{result.upper_bound:+.4f} (upper).",
        ]
    if result.replaced:
        lines.append(f"Rows: {result.rows} labelled live rows ({result.positives} positives) scored by both models.")
    if result.decision == "rollback":
        done = "was rolled back" if result.acted else "must roll back"
        lines.append(f"Production {done} to {result.replaced}.")
    lines.append(f"Thresholds: max_auc_drop = {result.settings.max_auc_drop}, min_rows = {result.min_rows}.")
    lines += [f"Live data: {literal(note)}." for note in result.notes]
    return "\n".join(lines) + "\n"


def write_outputs(result: GuardResult, out_dir: Path) -> Path:
    """Write guard.json and report.md into ``out_dir``; return the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "guard.json").write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    report = out_dir / "report.md"
    report.write_text(render_report(result))
    return report
