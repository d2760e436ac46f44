"""Outputs the docs show, compared with real ones beyond what changes run to run (ids, hashes, times, ports).

A shown output may leave lines out: a line holding only `...` stands for any number of lines. With
`pytest --update-docs`, the tests that own a shown output rewrite it from the run they just made instead.
"""

from __future__ import annotations

import re

ELLIPSIS = "..."
# (pattern, placeholder), applied in order: longer and more specific forms first
VOLATILE = [
    (re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{8}\b"), "<version>"),  # model versions: creation time + sha256 start
    (re.compile(r"\b\d{8}-\d{6}\b"), "<timestamp>"),  # log file names
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?: ?(?:[+-]\d{2}:?\d{2}|Z))?"), "<time>"),
    (re.compile(r"\b[A-Z][a-z]{2} [A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2} \d{4} [+-]\d{4}"), "<time>"),  # git's dates
    (re.compile(r" \(\d+:\d{2}:\d{2}\)"), ""),  # pytest adds "(0:01:10)" to runs over a minute
    (re.compile(r"\b[0-9a-f]{64}\b"), "<sha256>"),
    (re.compile(r"(?<!\w)(?<!\d\.)[0-9a-f]{7,40}(?!\w)"), "<commit>"),  # full or abbreviated; never decimals
    (re.compile(r"(?<=127\.0\.0\.1:)\d+"), "<port>"),
    (re.compile(r"(?<=/actions/runs/)\d+"), "<run>"),
    (re.compile(r"(?<![\w.])\d+\.\d+\.\d+(?![.\d])"), "<x.y.z>"),  # library and service versions
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?= ?s\b)"), "<seconds>"),  # durations: "0.6 s", "in 47.04s"
    # the duration column is right-aligned: a duration of two digits takes a space of the padding before it
    (re.compile(r" +(?=<seconds>)"), " "),
    # a float's last digits change with the order of a sum (BLAS threads): compared to 12 decimals, not 17
    (re.compile(r"(?<![\w.])(\d+\.\d{12})\d+"), r"\1"),
]


def normalise(text: str) -> str:
    """The text with volatile parts replaced by placeholders, trailing spaces and outer blank lines dropped."""
    for pattern, placeholder in VOLATILE:
        text = pattern.sub(placeholder, text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def segments(shown: str) -> list[list[str]]:
    """The shown lines split at `...` lines; an empty first or last segment means the elision is at that end."""
    parts: list[list[str]] = [[]]
    for line in normalise(shown).splitlines():
        if line == ELLIPSIS:  # not indented: argparse's usage ends with an indented "..." of its own
            parts.append([])
        else:
            parts[-1].append(line)
    return parts


def matches(shown: str, actual: str) -> bool:
    """Whether the real output is what the docs show, `...` lines standing for any number of lines."""
    parts, lines = segments(shown), normalise(actual).splitlines()
    if len(parts) == 1:
        return parts[0] == lines
    first, *middle, last = parts
    if lines[: len(first)] != first or (last and lines[len(lines) - len(last) :] != last):
        return False
    cursor, end = len(first), len(lines) - len(last)
    for part in middle:
        found = _find(lines, part, cursor, end)
        if found is None:
            return False
        cursor = found + len(part)
    return cursor <= end


def refreshed(shown: str, actual: str) -> str:
    """The shown text redone from the real output, keeping its `...` elisions while the lines they keep remain.

    Every shown output of a page is redone from the same run, so the ids it shows agree from one block to the next.
    A kept part is found again by its first line; when one is gone, the whole output replaces the shown text.
    """
    raw = [line.rstrip() for line in actual.strip("\n").splitlines()]
    parts = segments(shown)
    if len(parts) == 1:
        return "\n".join(raw)
    lines = [normalise(line) for line in raw]
    first, *middle, last = parts
    kept = [raw[: len(first)]]
    cursor, end = len(first), len(raw) - len(last)
    for part in middle:
        # a kept part is found again by its first line, and keeps its length
        found = next((i for i in range(cursor, end) if lines[i] == part[0]), None) if part else cursor
        if found is None:
            return "\n".join(raw)
        kept.append(raw[found : found + len(part)])
        cursor = found + len(part)
    kept.append(raw[end:] if last else [])
    return f"\n{ELLIPSIS}\n".join("\n".join(part) for part in kept).strip("\n")


def _find(lines: list[str], part: list[str], start: int, end: int) -> int | None:
    """Where ``part`` occurs as consecutive lines of ``lines[start:end]``, or None."""
    for index in range(start, end - len(part) + 1):
        if lines[index : index + len(part)] == part:
            return index
    return None
