"""A report counter that only goes up, across agent restarts: the coordinator refuses any value not above
the last it accepted, so a sniffed report replayed later is refused."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from nodeagent.kit import files

# How far ahead of the value in use the file is written (the clock's milliseconds): a durable write costs
# about 1 ms on the path of every request (a push's report among them), so the file holds a ceiling that
# a restart starts above, and is written again only once the values reach it: at most once a minute when
# requests follow the clock, once per 60,000 requests in a burst.
RESERVE = 60_000


class Sequence:
    """The next value is above both the ceiling written to ``path`` and the clock in milliseconds, so it
    still goes up when the file was lost (unless the clock went back too)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        try:
            self.value = int(path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            self.value = 0
        self._ceiling = self.value  # every value up to here may have been used before this start

    def next(self) -> int:
        with self._lock:
            self.value = max(self.value + 1, int(time.time() * 1000))
            if self.value > self._ceiling:
                files.write_private(self.path, str(self.value + RESERVE).encode())  # before the value is used
                self._ceiling = self.value + RESERVE
            return self.value
