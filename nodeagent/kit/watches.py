"""Watch handles drivers combine: several watches as one, and polling for what sends no event."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable


class Watches:
    """Several watches stopped together."""

    def __init__(self, watches: Iterable[Any]):
        self.watches = [w for w in watches if w is not None]

    def stop(self) -> None:
        for watch in self.watches:
            watch.stop()


class PollWatch:
    """For state the kernel announces nowhere: an event for each resource every ``interval`` seconds."""

    def __init__(self, resource_ids: list[str], interval: float, on_event: Callable[[str], None]):
        self.resource_ids = resource_ids
        self.interval = interval
        self.on_event = on_event
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pollwatch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for resource_id in self.resource_ids:
                self.on_event(resource_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
