"""The model registry: a folder of versions, atomic stage pointers and an append-only history."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from . import artifact

STAGES = ("staging", "production")
HISTORY_KEYS = {"time", "user", "action", "stage", "from", "to", "reason"}


class RegistryError(Exception):
    """A registry operation cannot be carried out (unknown version, nothing to roll back to...)."""


def atomic_write(path: Path, text: str) -> None:
    """Replace a file's content all at once: write a temp file, fsync, os.replace, fsync the folder."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}-", delete=False) as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.chmod(file.name, 0o644)  # readable by a service running as another user (the container's)
    os.replace(file.name, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class Registry:
    """Model versions under ``models/``, stage pointers under ``stages/``, and ``history.jsonl``."""

    def __init__(self, root: Path) -> None:
        """Open (lazily create) the registry rooted at ``root``."""
        self.root = Path(root)
        self.models = self.root / "models"
        self.stages = self.root / "stages"
        self.history_file = self.root / "history.jsonl"
        self._file_lock = FileLock(self.root / ".lock", timeout=60)

    def _lock(self) -> FileLock:
        """One writer at a time, across processes (re-entrant within one)."""
        for folder in (self.models, self.stages):
            folder.mkdir(parents=True, exist_ok=True)
        return self._file_lock

    def versions(self) -> list[str]:
        """All registered versions, oldest first."""
        if not self.models.is_dir():
            return []
        return sorted(p.name for p in self.models.iterdir() if p.is_dir() and not p.name.startswith("."))

    def folder(self, version: str) -> Path:
        """The folder of a registered version."""
        if version not in self.versions():
            raise RegistryError(f"no version {version!r} in {self.root}; see the `models` command")
        return self.models / version

    def current(self, stage: str) -> str | None:
        """The version a stage points at, or None."""
        self._check_stage(stage)
        try:
            return (self.stages / stage).read_text().strip() or None
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise RegistryError(f"{self.stages / stage} does not hold a version name") from None

    def history(self) -> list[dict]:
        """Every registration, promotion and rollback, oldest first."""
        if not self.history_file.is_file():
            return []
        try:
            lines = self.history_file.read_text().split("\n")
        except UnicodeDecodeError:
            raise RegistryError(f"{self.history_file} is not text: restore it from a backup") from None
        entries = []
        for number, line in enumerate(lines[:-1], start=1):  # an unterminated tail was never committed
            if not line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not (isinstance(entry, dict) and entry.keys() >= HISTORY_KEYS):
                raise RegistryError(f"{self.history_file}, line {number} is not a history entry: {line[:80]!r}")
            entries.append(entry)
        return entries

    def register(self, source: Path, reason: str = "trained") -> str:
        """Copy a verified model folder into the registry; return its version."""
        version = artifact.verify(source)["version"]
        with self._lock():
            if version in self.versions():
                raise RegistryError(f"version {version} is already registered")
            incoming = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.models))
            try:
                shutil.copytree(source, incoming, dirs_exist_ok=True)
                artifact.verify(incoming)
                incoming.rename(self.models / version)
            except BaseException:
                shutil.rmtree(incoming, ignore_errors=True)
                raise
            self._record("register", None, None, version, reason)
        return version

    def promote(self, version: str, stage: str, reason: str = "manual") -> str | None:
        """Point a stage at a verified version; return the version it pointed at before."""
        self._check_stage(stage)
        with self._lock():
            self.repair()  # finish a move a crash left half done, so the history and the pointers agree
            return self._move(version, stage, reason, "promote")

    def rollback(self, to: str | None = None, reason: str = "manual rollback") -> tuple[str | None, str]:
        """Move production back to ``to`` or to the version it replaced; return (from, to)."""
        with self._lock():
            self.repair()  # as in promote: "the version it replaced" is read from the history
            target = to or self.previous_production()
            return self._move(target, "production", reason, "rollback"), target

    def note(self, action: str, stage: str, version: str, reason: str) -> None:
        """Record a decision about the version a stage points at (e.g. "confirm"), without moving the pointer."""
        with self._lock():
            if self.current(stage) != version:
                raise RegistryError(f"{stage} is {self.current(stage)}, not {version}: nothing recorded")
            self._record(action, stage, None, version, reason)

    def _move(self, version: str, stage: str, reason: str, action: str) -> str | None:
        """Verify ``version``, record the move, then point ``stage`` at it (the lock held); return the old version."""
        artifact.verify(self.folder(version))
        previous = self.current(stage)
        self._record(action, stage, previous, version, reason)
        atomic_write(self.stages / stage, version + "\n")
        return previous

    def previous_production(self) -> str:
        """The production version that the current one replaced (rollbacks unwind promotions)."""
        current = self.current("production")
        for entry in reversed(self.history()):
            if entry["action"] == "promote" and entry["stage"] == "production" and entry["to"] == current:
                if entry["from"] == current:  # promoted again while already in production: look further back
                    continue
                if entry["from"]:
                    return entry["from"]
                break
        raise RegistryError(f"production ({current}) replaced no earlier version: nothing to roll back to")

    def repair(self) -> None:
        """Make each stage pointer agree with the history after a crash between the two writes."""
        with self._lock():
            for stage in STAGES:
                moves = [e for e in self.history() if e["stage"] == stage]
                if moves and self.current(stage) != moves[-1]["to"]:
                    atomic_write(self.stages / stage, moves[-1]["to"] + "\n")

    def _record(self, action: str, stage: str | None, old: str | None, new: str, reason: str) -> None:
        """Append one line to the history (called with the lock held), fsynced before the pointer moves."""
        entry = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "user": os.environ.get("GITHUB_ACTOR") or getpass.getuser(),
            "action": action,
            "stage": stage,
            "from": old,
            "to": new,
            "reason": reason,
        }
        self._drop_torn_tail()
        with self.history_file.open("a") as file:
            file.write(json.dumps(entry) + "\n")
            file.flush()
            os.fsync(file.fileno())

    def _drop_torn_tail(self) -> None:
        """Cut an unterminated last line (a crash mid-append) so the next entry starts on its own line."""
        if not self.history_file.is_file() or self.history_file.stat().st_size == 0:
            return
        with self.history_file.open("rb+") as file:
            file.seek(-1, os.SEEK_END)
            if file.read(1) != b"\n":
                file.seek(0)
                file.truncate(file.read().rfind(b"\n") + 1)

    @staticmethod
    def _check_stage(stage: str) -> None:
        """Reject a stage name that is not one of STAGES."""
        if stage not in STAGES:
            raise RegistryError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
