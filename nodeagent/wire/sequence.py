"""A report counter that only goes up, across agent restarts: the coordinator refuses any value not above
the last it accepted, so a sniffed report replayed later is refused."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from nodeagent.kit import files


class Sequence:
    """The next value is above both the last one written to ``path`` and the clock in milliseconds, so it
    still goes up when the file was lost (unless the clock went back too)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        try:
            self.value = int(path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            self.value = 0

    def next(self) -> int:
        with self._lock:
            self.value = max(self.value + 1, int(time.time() * 1000))
            files.write_private(self.path, str(self.value).encode())
            return self.value
