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
MAX_REASON = 500  # characters of one history reason
POINTER_BYTES = 256  # a stage pointer holds one version name; anything longer is not one


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
        folders = self.models.iterdir() if self.models.is_dir() else []
        return sorted(p.name for p in folders if _is_version(p.name) and p.is_dir() and not p.is_symlink())

    def folder(self, version: str) -> Path:
        """The folder of a registered version: a plain name of a real folder in ``models/``, never a path or link."""
        if version not in self.versions():
            raise RegistryError(f"no version {version!r} in {self.root}; see the `history` command")
        return self.models / version

    def current_folder(self, stage: str) -> Path | None:
        """The folder of the version a stage points at, or None before its first promotion."""
        version = self.current(stage)
        return self.folder(version) if version else None

    def current(self, stage: str) -> str | None:
        """The version a stage points at, or None; a pointer that is not a plain version name is refused."""
        if stage not in STAGES:
            raise RegistryError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
        pointer = self.stages / stage
        if pointer.is_symlink():  # never its target's text in a message
            raise RegistryError(f"{pointer} is a symbolic link: a stage pointer is a file of the registry")
        try:
            with pointer.open("rb") as file:
                text = file.read(POINTER_BYTES + 1).decode(errors="replace").strip()
        except FileNotFoundError:
            return None
        if text and not _is_version(text):
            shown = f"({text[:60]!r}): a stage names a folder of models/"
            raise RegistryError(f"{pointer} does not hold a version name {shown}")
        return text or None

    def history(self) -> list[dict]:
        """Every registration, promotion and rollback, oldest first."""
        try:
            text = self.history_file.read_text() if self.history_file.is_file() else ""
        except UnicodeDecodeError:
            raise RegistryError(f"{self.history_file} is not text: restore it from a backup") from None
        lines = enumerate(text.split("\n")[:-1], start=1)  # an unterminated last line was never committed
        return [_history_entry(line, f"{self.history_file}, line {number}") for number, line in lines if line]

    def register(self, source: Path, reason: str = "trained") -> str:
        """Copy a verified model folder's files (never a link) into the registry; return its version."""
        _check_reason(reason)
        version = artifact.verify(source)["version"]  # refuses links and unknown files, naming them
        with self._lock():
            if version in self.versions():
                raise RegistryError(f"version {version} is already registered")
            incoming = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.models))
            try:
                names = [path.name for path in source.iterdir()]
                for name in names:
                    shutil.copyfile(source / name, incoming / name, follow_symlinks=False)
                artifact.verify(incoming)  # the copy: the source may have changed since it was checked
                artifact.write_manifest(incoming, [name for name in names if name != artifact.MANIFEST_FILE])
                os.chmod(incoming, 0o755)  # readable by a service running as another user, as the pointers are
                incoming.rename(self.models / version)
            except BaseException:
                shutil.rmtree(incoming, ignore_errors=True)
                raise
            self._record("register", None, None, version, reason)
        return version

    def promote(self, version: str, stage: str, reason: str = "manual") -> str | None:
        """Point a stage at a verified version; return the version it pointed at before."""
        _check_reason(reason)
        with self._lock():
            self.repair()  # finish a move a crash left half done, so the history and the pointers agree
            return self._move(version, stage, reason, "promote")

    def rollback(self, to: str | None = None, reason: str = "manual rollback") -> tuple[str | None, str]:
        """Move production back to ``to`` or to the version it replaced; return (from, to)."""
        _check_reason(reason)
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
        previous = self.current(stage)
        artifact.verify(self.folder(version))
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
        """Finish what a crash left: remove temp files, and make each stage pointer agree with the history."""
        with self._lock():
            # every writer holds the lock while its temp files exist: with the lock held, any left are a dead writer's
            for temp in [*self.stages.glob(".*"), *self.models.glob(".incoming-*")]:
                if temp.is_dir() and not temp.is_symlink():
                    shutil.rmtree(temp)
                else:
                    temp.unlink()
            for stage in STAGES:
                moves = [e for e in self.history() if e["stage"] == stage]
                if moves and self.current(stage) != moves[-1]["to"]:
                    atomic_write(self.stages / stage, moves[-1]["to"] + "\n")

    def _record(self, action: str, stage: str | None, old: str | None, new: str, reason: str) -> None:
        """Append one line to the history (called with the lock held), fsynced before the pointer moves."""
        time = datetime.now(timezone.utc).isoformat(timespec="seconds")
        user = os.environ.get("GITHUB_ACTOR") or getpass.getuser()
        entry = {"time": time, "user": user, "action": action, "stage": stage, "from": old, "to": new, "reason": reason}
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
            if file.read(1) != b"\n":  # read the whole file only when its last line is torn
                file.seek(0)
                file.truncate(file.read().rfind(b"\n") + 1)


def _is_version(name: object) -> bool:
    """A plain version name (what a history entry or a stage pointer may hold)."""
    return isinstance(name, str) and bool(artifact.VERSION_NAME.fullmatch(name))


def _history_entry(line: str, where: str) -> dict:
    """Parse a history line, refusing one without the keys, a known stage and plain version names."""
    try:
        entry = json.loads(line)
    except ValueError:
        entry = None
    shaped = isinstance(entry, dict) and entry.keys() >= HISTORY_KEYS and entry["stage"] in (None, *STAGES)
    if not (shaped and _is_version(entry["to"]) and (entry["from"] is None or _is_version(entry["from"]))):
        raise RegistryError(f"{where} is not a history entry: {line[:80]!r}")
    return entry


def _check_reason(reason: str) -> None:
    """Refuse a reason that is not one printable line: it goes into the history and the registry branch's log."""
    if not (isinstance(reason, str) and reason.isprintable() and len(reason) <= MAX_REASON):
        raise RegistryError(f"a reason must be one printable line of at most {MAX_REASON} characters")
