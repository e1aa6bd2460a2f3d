"""Drift: what an agent found changed behind its back, the guard against fighting, and the spool.

A drift is a difference found by a reconcile of a document the agent had already
applied: the first apply of a new generation is the agent's own work, never drift.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nodeagent.kit import files
from nodeagent.kit.result import ResourceResult, Status

CORRECTED, LEFT, CONTESTED, FAILED = "corrected", "left", "contested", "failed"


@dataclass(frozen=True)
class DriftEvent:
    """One drift of one resource: what was expected, what was found (redacted), and what became of it."""

    node: str
    resource: str
    driver: str
    generation: int
    state: str  # corrected (enforce), left (monitor), contested (backed off), failed (could not fix)
    changes: tuple[dict[str, Any], ...]
    seen_at: float
    fixed_at: float | None = None
    error: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def from_result(cls, node: str, generation: int, result: ResourceResult, seen_at: float,
                    contested: bool) -> "DriftEvent":
        changes = tuple({"field": c.field, "expected": c.new, "found": c.old} for c in result.changes)
        if contested:
            state = CONTESTED
        elif result.status is Status.CHANGED:
            state = CORRECTED
        elif result.status is Status.DRIFTED:
            state = LEFT
        else:
            state = FAILED
        fixed = time.time() if state == CORRECTED else None
        return cls(node, result.id, result.driver, generation, state, changes, seen_at, fixed, result.error)

    def describe(self) -> str:
        found = "; ".join(f"{c['field']}: {_shown(c['found'])} (expected {_shown(c['expected'])})"
                          for c in self.changes)
        return f"{self.resource} {self.state}: {found or self.error or 'changed'}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["changes"] = list(self.changes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DriftEvent":
        return cls(**{**data, "changes": tuple(data.get("changes", ()))})


def _shown(value: Any) -> str:
    return "(absent)" if value is None else str(value)


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

    def append(self, event: dict[str, Any]) -> None:
        path = self.directory / f"{self.next_number:012d}.json"
        self.next_number += 1
        files.write_private(path, json.dumps(event).encode())  # whole or not at all, even on a full disk

    def pending(self, limit: int = 100) -> list[tuple[Path, dict[str, Any]]]:
        found = []
        for path in sorted(self.directory.glob("*.json"))[:limit]:
            try:
                found.append((path, json.loads(path.read_text())))
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # a torn write from a crash: nothing to deliver
        return found

    def acknowledge(self, paths: list[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(list(self.directory.glob("*.json")))
