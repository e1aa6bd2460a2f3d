"""Best-effort messages sent by a thread of their own, so the reconcile loop never waits on the broker.

Notifications are for operators' tools; what must not be lost (drift, refusals,
apply results) goes through the disk spool and the report instead. So the queue is
bounded (a full queue drops the newest and counts it) and each message gets a bounded
number of tries. The stdlib queue and a thread are enough here: one consumer, no ordering
across restarts.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable

LOG = logging.getLogger(__name__)


class Outbox:
    """``put()`` returns at once; a worker calls ``send(*item)`` up to ``tries`` times per item."""

    def __init__(self, send: Callable[..., None], size: int = 1000, tries: int = 3, delay: float = 0.5,
                 name: str = "outbox"):
        self.send = send
        self.tries = tries
        self.delay = delay
        self.name = name
        self.dropped = 0  # refused because the queue was full
        self.failed = 0  # given up after ``tries``
        self.sent = 0
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._deadline: float | None = None  # set by stop(): nothing more is sent after it
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, *item: Any) -> bool:
        """Queue ``item`` for sending; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                LOG.warning("%s full: %d messages dropped so far", self.name, self.dropped)
            return False

    def pending(self) -> int:
        return self._queue.qsize()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop after what is queued, or after ``timeout`` (what is left then is dropped, and the worker ends
        after the message in hand): a dead broker or a burst must not hold up a shutdown, and nothing is
        sent once the caller closes the connection after this."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self.dropped += 1 + self._queue.qsize()
                return
            for attempt in range(self.tries):
                try:
                    self.send(*item)
                    self.sent += 1
                    break
                except Exception as exc:
                    if attempt + 1 == self.tries or self._stop.wait(self.delay * 2 ** attempt):
                        self.failed += 1
                        LOG.debug("%s gave up on %s: %s", self.name, item[:1], exc)
                        break
