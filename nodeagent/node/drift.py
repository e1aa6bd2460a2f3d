"""Drift: what an agent found changed behind its back, the guard against fighting, and the spool.

A drift is a difference found by a reconcile of a document the agent had already
applied: the first apply of a new generation is the agent's own work, never drift.
The drift event itself is a wire message (``nodeagent.wire.messages.DriftEvent``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from nodeagent.kit import files
from nodeagent.kit.result import ResourceResult, Status
from nodeagent.wire.messages import Event, Malformed

LOG = logging.getLogger(__name__)

def is_drift(result: ResourceResult) -> bool:
    """A reconcile result that means the node had moved away from the document.

    A service restarted only because something it reads changed (notified, nothing of its own differed)
    did not drift: the drift is the resource that notified it.
    """
    if result.status is Status.CHANGED and not result.changes and result.notified:
        return False
    return result.status in (Status.CHANGED, Status.DRIFTED) or (result.status is Status.FAILED
                                                                  and bool(result.changes))


class DriftGuard:
    """Stops fighting: a resource that drifts ``limit`` times within ``window`` seconds is contested
    and left alone for a backoff that doubles each time, until it stays quiet for a window."""

    def __init__(self, limit: int, window: float, backoff: float, max_backoff: float = 3600.0):
        self.limit, self.window, self.backoff, self.max_backoff = limit, window, backoff, max_backoff
        self.seen: dict[str, list[float]] = {}
        self.strikes: dict[str, int] = {}
        self.until: dict[str, float] = {}

    def record(self, resource: str, now: float) -> bool:
        """Note a drift; True when this one makes the resource contested (then it is backed off)."""
        recent = [t for t in self.seen.get(resource, []) if now - t <= self.window] + [now]
        self.seen[resource] = recent
        if len(recent) < self.limit:
            return False
        strikes = self.strikes.get(resource, 0)
        self.until[resource] = now + min(self.backoff * 2 ** strikes, self.max_backoff)
        self.strikes[resource] = strikes + 1
        self.seen[resource] = []
        return True

    def contest(self, resource: str, now: float) -> bool:
        """Make the resource contested at once (its writer is another manager of it); True, as ``record``."""
        self.seen[resource] = [now] * (self.limit - 1)
        return self.record(resource, now)

    def backed_off(self, resource: str, now: float) -> bool:
        until = self.until.get(resource)
        if until is None:
            return False
        if now < until:
            return True
        last = max(self.seen.get(resource, [until]), default=until)
        if now - max(last, until) > self.window:  # quiet for a window: forgiven
            self.strikes.pop(resource, None)
            self.until.pop(resource, None)
        return False


class Spool:
    """Events waiting for the coordinator, on disk in order, so none is lost to a broker outage or a restart."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        numbers = [int(p.stem) for p in self.directory.glob("*.json") if p.stem.isdigit()]
        self.next_number = max(numbers, default=0) + 1

    def append(self, event: Event) -> None:
        path = self.directory / f"{self.next_number:012d}.json"
        self.next_number += 1
        files.write_private(path, json.dumps(event.to_dict()).encode())  # whole or not at all, even on a full disk

    def pending(self, limit: int = 100) -> list[tuple[Path, Event]]:
        found = []
        for path in sorted(self.directory.glob("*.json"))[:limit]:
            try:
                found.append((path, Event.from_dict(json.loads(path.read_text()))))
            except Malformed as exc:  # not one an agent writes: sent, it would get every report refused
                LOG.error("spooled event %s dropped: %s", path.name, exc)
                path.unlink(missing_ok=True)
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # a torn write from a crash: nothing to deliver
        return found

    def acknowledge(self, paths: list[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(list(self.directory.glob("*.json")))
