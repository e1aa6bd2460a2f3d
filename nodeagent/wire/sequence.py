"""A report counter that only goes up, across agent restarts: the coordinator refuses any value not above
the last it accepted, so a sniffed report replayed later is refused."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from nodeagent.kit import files

RESERVE_MS = 600_000  # how far ahead of the values handed out the file's mark is written: once per 10 minutes


class Sequence:
    """The next value is above both the last one handed out and the clock in milliseconds, so it still goes
    up when the file was lost (unless the clock went back too).

    ``path`` holds a mark above every value handed out, written before a value reaches it: a restarted agent
    starts above it, whatever the clock says. Writing the value itself at each request cost two fsyncs per
    heartbeat (eight wakeups of an idle agent, and a disk write every 10 s); the mark is written every 10
    minutes, and a restart skips at most that far ahead (the coordinator only asks for a higher value).
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        try:
            self.value = int(path.read_text().strip() or 0)  # an older agent's file holds its last value
        except (FileNotFoundError, ValueError):
            self.value = 0
        self._mark = self.value

    def next(self) -> int:
        with self._lock:
            self.value = max(self.value + 1, int(time.time() * 1000))
            if self.value >= self._mark:
                self._mark = self.value + RESERVE_MS
                files.write_private(self.path, str(self._mark).encode())
            return self.value
