"""Keeping the accepted document true: reconciles (whole or of what events touched), drift, fighting.

The agent's main thread is the only caller of ``apply_document`` and ``reconcile``,
so two reconciles never run at once; watch threads only ``touch`` resources.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from nodeagent.kit import files
from nodeagent.kit.daemon import sd_notify
from nodeagent.node.drift import DriftGuard, is_drift
from nodeagent.node.engine import Engine
from nodeagent.kit.metrics import AgentMetrics
from nodeagent.kit.model import Document
from nodeagent.kit.result import ReconcileResult, Status
from nodeagent.kit.watches import Watches
from nodeagent.wire.messages import DriftEvent

LOG = logging.getLogger(__name__)
MAX_DEBOUNCE = 1.0  # a resource touched continuously is still reconciled this often


class Enforcer:
    """One node's document, its watches, and the record of what drifted."""

    def __init__(self, host: str, engine: Engine, state_dir: Path, guard: DriftGuard, debounce: float,
                 record: Callable[[str, str, DriftEvent | None], None],
                 notify: Callable[[str, dict[str, Any]], None], metrics: AgentMetrics):
        self.host = host
        self.engine = engine
        self.state_dir = state_dir
        self.guard = guard
        self.debounce = debounce
        self.record = record
        self.notify = notify
        self.metrics = metrics
        self.document: Document | None = None
        self.applied_generation: int | None = None  # its first reconcile is the agent's own work, not drift
        self.last_result: ReconcileResult | None = None
        self.states: dict[str, str] = {}
        self.recent_drift: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)
        self.watches: Watches | None = None
        self._touched: dict[str, tuple[float, float]] = {}  # id -> (first seen, wall clock), last touch
        self._deferred: set[str] = set()
        self._standing: dict[str, tuple] = {}  # drift already reported and still there  # touched while backed off: looked at again when the backoff ends
        self._last_touch = 0.0
        self._lock = threading.Lock()
        self.wake: Callable[[], None] = lambda: None
        self._status_error: int | None = None

    # -- documents -------------------------------------------------------------------------------
    def apply_document(self, document: Document, trigger: str) -> ReconcileResult:
        self.stop_watches()
        self.document = document
        result = self.reconcile(trigger)
        self.applied_generation = document.generation
        self.start_watches()  # after the first apply: the directories and links exist now
        return result

    # -- events ----------------------------------------------------------------------------------
    def start_watches(self) -> None:
        if self.document is None:
            return
        by_driver: dict[str, dict[str, dict[str, Any]]] = {}
        for resource in self.document.resources:
            by_driver.setdefault(resource.driver, {})[resource.id] = resource.spec
        handles = []
        for driver_name, specs in by_driver.items():
            try:
                handles.append(self.engine.registry.get(driver_name).watch(specs, self.engine.ctx, self.touch))
            except Exception as exc:  # the periodic resync still covers what this watch would have
                LOG.warning("cannot watch %s resources: %s", driver_name, exc)
        self.watches = Watches(handles)

    def stop_watches(self) -> None:
        if self.watches is not None:
            self.watches.stop()
            self.watches = None

    def touch(self, resource_id: str) -> None:
        """Called from watch threads: this resource may have changed."""
        now = time.monotonic()
        with self._lock:
            self._touched.setdefault(resource_id, (now, time.time()))
            self._last_touch = now
        self.wake()

    def touch_deadline(self) -> float | None:
        """When touched (or deferred) resources are due (monotonic), or None when none is waiting."""
        deadlines = [self.guard.until[r] for r in self._deferred if r in self.guard.until]
        with self._lock:
            if self._touched:
                first = min(monotonic for monotonic, _ in self._touched.values())
                deadlines.append(min(self._last_touch + self.debounce, first + MAX_DEBOUNCE))
        return min(deadlines, default=None)

    def take_touched(self) -> tuple[list[str], float]:
        now = time.monotonic()
        with self._lock:
            touched, self._touched = self._touched, {}
        due = {r for r in self._deferred if self.guard.until.get(r, 0) <= now}
        self._deferred -= due
        seen = min((wall for _, wall in touched.values()), default=time.time())
        return sorted(set(touched) | due), seen

    # -- reconciling -----------------------------------------------------------------------------
    def reconcile(self, trigger: str, only: list[str] | None = None, seen_at: float | None = None
                  ) -> ReconcileResult | None:
        if self.document is None:
            return None
        now = time.monotonic()
        wanted = [r.id for r in self.document.resources] if only is None else only
        allowed = [rid for rid in wanted if not self.guard.backed_off(rid, now)]
        self._deferred.update(set(wanted) - set(allowed))
        if not allowed:
            return None
        result = self.engine.reconcile(self.document, only=allowed if len(allowed) < len(wanted) or only else None)
        self.metrics.reconcile_seconds.labels(trigger.split(" ")[0]).observe(result.duration)
        for item in result.resources:
            self.states[item.id] = item.status.value
            if item.status is Status.FAILED:
                self.metrics.apply_failures.labels(item.driver).inc()
        self.last_result = result
        if self.applied_generation == self.document.generation:
            self._record_drift(result, seen_at or time.time())
        failed = [r for r in result.resources if r.status is Status.FAILED]
        if failed:
            detail = "; ".join(f"{r.id}: {r.error}" for r in failed)
            self.record("apply.failed", f"generation {result.generation}: {detail}", None)
            self.notify("nodeagent.apply.failed", {"node": self.host, "generation": result.generation,
                                                   "failed": [{"id": r.id, "error": r.error} for r in failed]})
        elif trigger.startswith("generation"):
            self.record("apply.succeeded", f"generation {result.generation}: {result.summary()}", None)
        if trigger.startswith("generation") or failed or any(is_drift(r) for r in result.resources):
            LOG.info("reconcile (%s): %s", trigger, result.summary())
        self._publish()
        return result

    def _record_drift(self, result: ReconcileResult, seen_at: float) -> None:
        now = time.monotonic()
        for item in result.resources:
            if not is_drift(item):
                self._standing.pop(item.id, None)
                continue
            if item.status is not Status.CHANGED:
                # Left (monitor) or not fixable: reported once, not again at every event or resync.
                standing = (item.status.value, item.changes, item.error)
                if self._standing.get(item.id) == standing:
                    continue
                self._standing[item.id] = standing
            # An edit that lands while the agent corrects (a Conflict) is fighting too, or a writer that never
            # stops would never be backed off.
            fought = item.status is Status.CHANGED or item.error_kind == "conflict"
            contested = fought and self.guard.record(item.id, now)
            event = DriftEvent.from_result(self.host, result.generation, item, seen_at, contested)
            LOG.warning("drift %s", event.describe())
            self.recent_drift.append(event.to_dict())
            self.metrics.drift_events.labels(item.driver, event.state).inc()
            self.record(f"drift.{event.state}", event.describe(), event)
            payload = event.to_dict()
            self.notify("nodeagent.drift.detected", payload)
            if event.state == "corrected":
                self.notify("nodeagent.drift.corrected", payload)
            elif event.state == "contested":
                self.notify("nodeagent.drift.contested", payload)

    # -- what others read ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        result = self.last_result
        counts = {status.value: 0 for status in Status}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        return {"generation": self.document.generation if self.document else 0,
                "mode": self.document.mode if self.document else None,
                "counts": counts if self.states else {},
                "failed": sorted(rid for rid, state in self.states.items() if state == "failed"),
                "drifted": sorted(rid for rid, state in self.states.items() if state == "drifted"),
                "contested": sorted(rid for rid in self.states if self.guard.backed_off(rid, time.monotonic())),
                "reconciled_at": result.started_at if result else None,
                "reconciled_generation": result.generation if result else 0}

    def status_line(self) -> str:
        status = self.status()
        counts = ", ".join(f"{n} {k}" for k, n in status["counts"].items() if n)
        return f"generation {status['generation']}: {counts or 'no document'}"

    def _publish(self) -> None:
        """The local view for ``nodeagent status``, systemd's STATUS= line, and the gauges."""
        status = self.status()
        for state, number in status["counts"].items():
            self.metrics.resources.labels(state).set(number)
        self.metrics.generation.set(status["generation"])
        resources = []
        if self.document is not None:
            for resource in self.document.resources:
                resources.append({"id": resource.id, "driver": resource.driver,
                                  "mode": self.document.mode_of(resource),
                                  "status": self.states.get(resource.id, "unknown"),
                                  "backed_off": self.guard.backed_off(resource.id, time.monotonic())})
        view = {"node": self.host, **status, "resources": resources, "drift": list(self.recent_drift)}
        try:
            files.write_private(self.state_dir / "status.json", json.dumps(view, indent=1).encode(), 0o644)
            self._status_error = None
        except OSError as exc:  # a full state directory must not stop enforcement; said once, not per reconcile
            if self._status_error != exc.errno:
                LOG.error("state directory %s: cannot write status.json (%s); 'nodeagent status' shows an "
                          "older view", self.state_dir, exc.strerror or exc)
            self._status_error = exc.errno
        sd_notify(f"STATUS={self.status_line()}")
