"""Refusals recorded without letting a flood of forged messages flood the records.

Each refused message used to cost an event and a notification, so 1,000 forged pushes
made 1,001 events. Here the first refusal of a kind from a source is recorded at once;
the rest within ``window`` seconds are counted and recorded as one summary when the
window ends. Sources are whatever the caller can tell apart (a host name, a presented
key); past ``max_sources`` open ones, new sources share one bucket, so varying the
claimed source does not get around the limit either.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Callable

OTHERS = "(other sources)"


def category(reason: str) -> str:
    """The stable part of a refusal reason (before any colon or quoted value), to group refusals by."""
    return re.split(r"[:'\"]", reason, maxsplit=1)[0].strip()[:60]


@dataclass
class _Window:
    started: float
    node: str | None
    count: int = 1
    last_reason: str = ""


class RefusalLog:
    """``refuse()`` records through ``record(node, kind, detail)``, at most once per source and kind per window,
    plus one summary with the count of what it held back."""

    def __init__(self, record: Callable[[str | None, str, str], None], window: float = 60.0,
                 max_sources: int = 50, clock: Callable[[], float] = time.monotonic):
        self.record = record
        self.window = window
        self.max_sources = max_sources
        self.clock = clock
        self._open: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()

    def refuse(self, source: str, node: str | None, kind: str, reason: str) -> bool:
        """Note a refusal; True when it was recorded now, False when it was counted into a window."""
        self.flush()
        key = (source[:120], kind)
        with self._lock:
            if key not in self._open and len(self._open) >= self.max_sources:
                key, node = (OTHERS, kind), None
            window = self._open.get(key)
            if window is not None:
                window.count += 1
                window.last_reason = reason
                return False
            self._open[key] = _Window(self.clock(), node, last_reason=reason)
        self.record(node, kind, reason)
        return True

    def flush(self, force: bool = False) -> None:
        """Record the summary of every window that has ended (all of them when ``force``)."""
        now = self.clock()
        with self._lock:
            ended = [(key, w) for key, w in self._open.items() if force or now - w.started >= self.window]
            for key, _ in ended:
                del self._open[key]
        for (source, kind), window in ended:
            if window.count > 1:
                self.record(window.node, kind, f"{window.count - 1} more refused from {source} within "
                                               f"{self.window:.0f} s, the last: {window.last_reason}")
