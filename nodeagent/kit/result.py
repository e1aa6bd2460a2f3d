"""What a reconcile found and did: small immutable values with one serialisation."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


REDACTED = "***"


@dataclass(frozen=True)
class Change:
    """One difference between the wanted and the observed state of a resource.

    ``field`` names what differs (``DEFAULT.core_plugin``, ``mode``, ``content``);
    ``old`` and ``new`` are display strings (None: absent); ``diff`` is a unified
    diff when the field is a whole text.
    """

    field: str
    old: str | None
    new: str | None
    diff: str | None = None

    def describe(self) -> str:
        if self.diff is not None:
            return self.diff.rstrip("\n")
        old = "(absent)" if self.old is None else self.old
        new = "(absent)" if self.new is None else self.new
        return f"{self.field}: {old} → {new}"

    def redacted(self) -> "Change":
        return Change(
            self.field,
            None if self.old is None else REDACTED,
            None if self.new is None else REDACTED,
            None if self.diff is None else f"{self.field}: (sensitive content changed)",
        )

    def to_dict(self) -> dict[str, Any]:
        data = {"field": self.field, "old": self.old, "new": self.new}
        if self.diff is not None:
            data["diff"] = self.diff
        return data


class Status(str, enum.Enum):
    IN_SYNC = "in_sync"      # observed equals desired
    CHANGED = "changed"      # was different, now fixed
    PENDING = "pending"      # differs; a plan, nothing applied
    DRIFTED = "drifted"      # differs; monitor mode, left as found
    FAILED = "failed"        # could not observe, apply or verify
    SKIPPED = "skipped"      # something it depends on failed


@dataclass(frozen=True)
class ResourceResult:
    """The outcome for one resource; ``changes`` are already redacted."""

    id: str
    driver: str
    status: Status
    changes: tuple[Change, ...] = ()
    error: str | None = None
    error_kind: str | None = None  # "temporary", "permanent" or "conflict" (edited while being corrected)
    duration: float = 0.0
    notified: tuple[str, ...] = ()  # what this resource did because others changed
    retry_in: float | None = None  # a temporary error's own delay before the next try (None: the backoff's)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "driver": self.driver, "status": self.status.value,
                "changes": [c.to_dict() for c in self.changes], "error": self.error,
                "error_kind": self.error_kind, "duration": round(self.duration, 6),
                "notified": list(self.notified)}


@dataclass(frozen=True)
class ReconcileResult:
    """One pass over a document."""

    node: str
    generation: int
    dry_run: bool
    resources: tuple[ResourceResult, ...]
    started_at: float
    duration: float
    notified: tuple[str, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        found = Counter(r.status.value for r in self.resources)
        return {status.value: found.get(status.value, 0) for status in Status}

    @property
    def failed(self) -> bool:
        return any(r.status in (Status.FAILED, Status.SKIPPED) for r in self.resources)

    @property
    def pending(self) -> bool:
        return any(r.status in (Status.PENDING, Status.DRIFTED) for r in self.resources)

    def summary(self) -> str:
        counts = self.counts()
        shown = [f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n or s in ("changed", "in_sync", "failed")]
        return f"{self.node} generation {self.generation}: {', '.join(shown)} in {self.duration:.3f} s"

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "generation": self.generation, "dry_run": self.dry_run,
                "started_at": self.started_at, "duration": round(self.duration, 6),
                "counts": self.counts(), "resources": [r.to_dict() for r in self.resources]}
