"""What a pipeline run shows: one line per stage with its time and result, everything with verbose and in a log."""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

SUMMARY_WIDTH = 27  # as wide as "[9/9] promote_to_production"
LOGS = Path("logs")


def log_path(name: str, folder: Path = LOGS) -> Path:
    """A new log file for a run of ``name``, named after the time it starts: logs/pipeline-20260101-120000.log."""
    return folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"


class Console:
    """Shows a run's stages on the screen (a summary line each, or every line when verbose) and logs every line."""

    def __init__(
        self, screen: TextIO | None = None, verbose: bool = False, log: Path | None = None, tick: float = 0.5
    ) -> None:
        """Write to ``screen`` (standard output by default) and append every line to ``log`` when given."""
        self._screen = screen
        self.verbose = verbose
        self.log_path = log
        self.tick = tick
        self._log: TextIO | None = None
        self._lock = threading.Lock()
        self._result = ""
        self._latest = ""
        self._progress = ""  # the progress line now on a terminal, to erase before the next write

    @property
    def screen(self) -> TextIO:
        """Where lines go; standard output is looked up at each write, so redirections made later apply."""
        return self._screen or sys.stdout

    def __enter__(self) -> Console:
        """Open the log file."""
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc) -> None:
        """Close the log file and say where it is, as the run's last line."""
        if self._log is not None:
            self._log.close()
            self._log = None
            self.show(f"log: {self.log_path}")

    def show(self, text: str) -> None:
        """A line for the screen whatever the verbosity (a summary, a failure), also logged."""
        self._write(text, screen=True)

    def say(self, text: str) -> None:
        """A stage's message: the last one is the stage's result on its summary line."""
        self._result = text
        self.detail(text)

    def detail(self, text: str) -> None:
        """Long output (a test run's report): in the log, and on the screen only when verbose."""
        for line in text.splitlines() or [""]:
            self._latest = line
            self._write(line, screen=self.verbose)

    @contextlib.contextmanager
    def stage(self, label: str) -> Iterator[None]:
        """Run one stage: its header when verbose, progress on a terminal, then its summary line with the time."""
        self._result = self._latest = ""
        self._write(label, screen=self.verbose)
        started = time.monotonic()
        done = threading.Event()
        ticker = None
        if not self.verbose and self.screen.isatty():
            ticker = threading.Thread(target=self._tick, args=(label, started, done), daemon=True)
            ticker.start()
        failed = True
        try:
            yield
            failed = False
        finally:
            done.set()
            if ticker is not None:
                ticker.join()
            result = self._result or ("failed" if failed else "done")
            self.show(f"{label.ljust(SUMMARY_WIDTH)} {time.monotonic() - started:6.1f} s  {result}")

    def _tick(self, label: str, started: float, done: threading.Event) -> None:
        """Redraw one progress line (elapsed seconds and the stage's latest output) until the stage ends."""
        while not done.wait(self.tick):
            line = f"{label.ljust(SUMMARY_WIDTH)} {time.monotonic() - started:6.0f} s  {self._latest}"
            with self._lock:
                self._erase()
                self._progress = line[: shutil.get_terminal_size().columns - 1]
                self.screen.write(self._progress)
                self.screen.flush()

    def _erase(self) -> None:
        """Clear the progress line, if one is drawn."""
        if self._progress:
            self.screen.write("\r\x1b[K")
            self._progress = ""

    def _write(self, line: str, screen: bool) -> None:
        """Append a line to the log, and to the screen when asked."""
        with self._lock:
            if self._log is not None:
                self._log.write(line + "\n")
                self._log.flush()
            if screen:
                self._erase()
                self.screen.write(line + "\n")
                self.screen.flush()
