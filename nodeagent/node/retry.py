"""When to look again at a resource that failed: kopf's ``TemporaryError(delay)`` model.

A temporary failure is retried after the error's own delay, else on an exponential
backoff (``first``, doubling, capped); a success resets it. A permanent failure is
not retried: the next change of the resource (its watch) or of the document is
what makes it worth another try. Pure: the caller passes the clock.
"""

from __future__ import annotations


class Retries:
    """The retry schedule of one node's resources; times are the caller's monotonic clock."""

    def __init__(self, first: float = 1.0, cap: float = 60.0, factor: float = 2.0):
        self.first, self.cap, self.factor = first, cap, factor
        self.attempts: dict[str, int] = {}  # failed temporarily this many times in a row
        self.due: dict[str, float] = {}

    def failed(self, resource: str, now: float, temporary: bool, delay: float | None = None) -> float | None:
        """Note a failure; the time of the next try, or None when it is not retried (permanent)."""
        if not temporary:
            self.succeeded(resource)
            return None
        attempts = self.attempts.get(resource, 0)
        self.attempts[resource] = attempts + 1
        wait = delay if delay is not None else min(self.first * self.factor ** attempts, self.cap)
        self.due[resource] = now + max(0.0, wait)
        return self.due[resource]

    def succeeded(self, resource: str) -> None:
        """The resource is fine (or needs no retry): the schedule starts afresh at its next failure."""
        self.attempts.pop(resource, None)
        self.due.pop(resource, None)

    def next_at(self) -> float | None:
        """When the earliest retry is due, or None when none is waiting."""
        return min(self.due.values(), default=None)

    def take_due(self, now: float) -> list[str]:
        """The resources whose retry is due, removed from the schedule (a new failure schedules them again)."""
        due = sorted(r for r, at in self.due.items() if at <= now)
        for resource in due:
            del self.due[resource]
        return due

    def clear(self) -> None:
        """A new document: every resource starts afresh."""
        self.attempts.clear()
        self.due.clear()
