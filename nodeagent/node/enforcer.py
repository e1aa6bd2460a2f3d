"""Keeping the accepted document true: reconciles (whole, of what events touched, of what is due a retry),
drift, fighting.

The agent's main thread is the only caller of every method here, so two reconciles never
run at once; the watch hub's threads only put touches on the agent's queue.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nodeagent.kit import files
from nodeagent.process.daemon import sd_notify
from nodeagent.node import attribution
from nodeagent.node.drift import DriftGuard, is_drift
from nodeagent.node.driftpolicy import CONTEST, IGNORE, WriterPolicy
from nodeagent.node.engine import Engine
from nodeagent.process.metrics import AgentMetrics
from nodeagent.document.model import Document
from nodeagent.kit.result import ReconcileResult, Status
from nodeagent.kit.watches import Sysctl, Touch
from nodeagent.node.redact import scrub_command
from nodeagent.node.retry import Retries
from nodeagent.node.watchhub import WatchHub
from nodeagent.wire.messages import AgentStatus, DriftEvent, LocalView, ResourceView, Rollback, Writer

LOG = logging.getLogger(__name__)
MAX_DEBOUNCE = 1.0  # a resource touched continuously is still reconciled this often


@dataclass(frozen=True)
class Pacing:
    """How the enforcer paces itself: events gathered for ``debounce`` seconds, the guard against fighting
    (``contested_*``, see DriftGuard), the retry backoff of temporary failures (see Retries); how files
    are watched (``file_watch``) and what a drift's writer means (``writers``, see WriterPolicy)."""

    debounce: float = 0.1  # the coalescing window after an event's reconcile (the first event is acted on at once)
    contested_count: int = 5
    contested_window: float = 60.0
    contested_backoff: float = 30.0
    retry_first: float = 1.0
    retry_cap: float = 60.0
    file_watch: str = "auto"
    short_lived: bool = True  # name writers gone before their event is read (the process log)
    writers: WriterPolicy = WriterPolicy()

    @classmethod
    def from_conf(cls, conf: Any) -> "Pacing":
        return cls(conf.debounce, conf.drift_contested_count, conf.drift_contested_window, conf.drift_backoff,
                   file_watch=conf.file_watch, short_lived=conf.name_short_lived_writers,
                   writers=WriterPolicy(tuple(conf.drift_ignore_from), tuple(conf.drift_contest_from)))


@dataclass(frozen=True)
class Outlet:
    """Where what the enforcer finds goes: the node's name, its local view (``status.json`` in
    ``state_dir``, the metrics), the events spooled for the coordinator (``record``), notifications, and
    ``report_soon``: tell the coordinator where the node stands now, without waiting for the heartbeat."""

    host: str
    state_dir: Path
    record: Callable[[str, str, DriftEvent | None], None]
    notify: Callable[[str, dict[str, Any]], None]
    metrics: AgentMetrics = field(default_factory=AgentMetrics)
    report_soon: Callable[[], None] = lambda: None


class Enforcer:
    """One node's document, its watches, its retries, and the record of what drifted.

    Its watch hub's touches go on one queue the enforcer drains whenever it looks at what is due, so a
    reconcile knows every event that arrived before it; a ``("touch", None)`` on ``inbox`` (the queue
    the agent's main loop waits on) wakes the loop, which calls ``run_due`` at ``due_at``.
    """

    def __init__(self, engine: Engine, outlet: Outlet, pacing: Pacing = Pacing(),
                 inbox: queue.Queue | None = None, interfaces_changed: Callable[[], None] | None = None):
        """``interfaces_changed``: told when the node's own interfaces or addresses change (its facts)."""
        self.engine = engine
        self.outlet = outlet
        self.host = outlet.host
        self.metrics = outlet.metrics
        self.pacing = pacing
        self.guard = DriftGuard(pacing.contested_count, pacing.contested_window, pacing.contested_backoff)
        self.retries = Retries(pacing.retry_first, pacing.retry_cap)
        self.inbox: queue.Queue = inbox if inbox is not None else queue.Queue()
        self.touches: queue.SimpleQueue[Touch] = queue.SimpleQueue()
        self.hub = WatchHub(self._arrived, interfaces_changed, engine.ctx.netns, pacing.file_watch, pacing.short_lived)
        self.document: Document | None = None
        self.applied_generation: int | None = None  # its first reconcile is the agent's own work, not drift
        self.last_result: ReconcileResult | None = None
        self.states: dict[str, str] = {}
        self.recent_drift: collections.deque[DriftEvent] = collections.deque(maxlen=20)
        self._touched: dict[str, float] = {}  # id -> wall clock of its latest touch, waiting for the debounce
        self._first_touch = self._last_touch = 0.0  # monotonic, of the touches waiting
        self._event_run = -MAX_DEBOUNCE  # monotonic, when touches were last reconciled
        self._deferred: set[str] = set()  # touched while backed off: looked at again when the backoff ends
        self._standing: dict[str, tuple] = {}  # drift already reported and still there
        self._said_failed: dict[str, str | None] = {}  # failures already recorded, by id: their error
        self._unapplied: set[str] = set()  # failed (or skipped) in this generation's apply: not applied yet
        self._status_error: int | None = None
        self.rolled_back: Rollback | None = None  # the last generation rolled back (see guard.ChangeGuard)
        self.confirming: dict[str, Any] | None = None  # the status reported while a change awaits its probes
        self._writers: dict[str, Writer] = {}  # id -> who made its latest change, until a reconcile looks
        self._held: dict[str, str] = {}  # id -> ignore / contest: its writer is one the policy names
        self._kinds: dict[str, set[type]] = {}  # id -> the kinds of watch its driver declared
        self._unnamed: set[str] = set()  # touched sysctls whose writer's own (fanotify) touch may follow

    # -- documents -------------------------------------------------------------------------------
    def apply_document(self, document: Document, trigger: str) -> ReconcileResult:
        """Apply a new document, then watch what it declares: listeners whose watches did not change keep
        listening (a touch of the apply's own writes costs one reconcile that finds them in sync)."""
        self.document = document
        declared = {resource.id for resource in document.resources}
        self.states = {rid: state for rid, state in self.states.items() if rid in declared}  # gone: not failed
        self.retries.clear()
        self._held.clear()  # a new document is the operator's word again
        self._said_failed.clear()
        result = self.reconcile(trigger)
        self._unapplied = {r.id for r in result.resources if r.status in (Status.FAILED, Status.SKIPPED)
                           } if result else set()
        self.applied_generation = document.generation
        self.start_watches()  # after the first apply: the directories and links exist now
        return result

    def release(self) -> None:
        """Hold no document (a rollback of the first one): nothing is enforced or watched until the next."""
        self.document = None
        self.applied_generation = None
        self.last_result = None
        self.states.clear()
        self.retries.clear()
        self._unapplied.clear()
        self._touched.clear()
        self._deferred.clear()
        self.start_watches()
        self.publish()

    # -- events ----------------------------------------------------------------------------------
    def start_watches(self) -> None:
        """Hand the hub what each resource's driver declares (nothing before the first document: the hub
        still hears the node's own interfaces)."""
        declared = {}
        for resource in self.document.resources if self.document is not None else ():
            try:
                declared[resource.id] = self.engine.registry.get(resource.driver).watches(resource.spec,
                                                                                          self.engine.ctx)
            except Exception as exc:  # the periodic resync still covers what this watch would have
                LOG.warning("cannot watch resource '%s': %s", resource.id, exc)
        self._kinds = {rid: {type(watch) for watch in watches} for rid, watches in declared.items()}
        self.hub.watch(declared)

    def stop_watches(self) -> None:
        self.hub.stop()

    def _arrived(self, touch: Touch) -> None:
        """In a listener's thread: queue the touch and wake the main loop (a full inbox is awake anyway)."""
        self.touches.put(touch)
        try:
            self.inbox.put_nowait(("touch", None))
        except queue.Full:
            pass

    def _drain(self) -> None:
        while True:
            try:
                self.touched(self.touches.get_nowait())
            except queue.Empty:
                return

    def touched(self, touch: Touch) -> None:
        """Note a touch: its resources are looked at after the debounce."""
        if not self._touched:
            self._first_touch = touch.clock
        self._last_touch = max(self._last_touch, touch.clock)
        for resource_id in touch.resources:
            self._touched[resource_id] = max(touch.at, self._touched.get(resource_id, 0.0))
            if touch.by is None and Sysctl in self._kinds.get(resource_id, ()) and \
                    self.pacing.file_watch != "inotify":
                self._unnamed.add(resource_id)  # a netconf announcement: the /proc/sys write's touch names it
            if isinstance(touch.by, Writer):
                self._unnamed.discard(resource_id)  # the agent's own writes name nobody and change nothing here
                self._writers[resource_id] = touch.by
                verdict = self.pacing.writers.verdict(touch.by)
                if verdict:
                    self._held[resource_id] = verdict
                else:  # someone else wrote after the expected writer: theirs is corrected
                    self._held.pop(resource_id, None)

    def due_at(self) -> float | None:
        """When touched, retried or deferred resources are due (monotonic), or None when none is waiting."""
        self._drain()
        deadlines = [self.guard.until[r] for r in self._deferred if r in self.guard.until]
        if self._touched:
            deadlines.append(self._touch_deadline())
        retry = self.retries.next_at()
        return min(deadlines + ([retry] if retry is not None else []), default=None)

    def _touch_deadline(self) -> float:
        """The leading edge: a touch after a quiet spell is due at once. Touches within ``debounce`` of the last
        event's reconcile (the burst it began, the agent's own writes) wait for quiet, at most MAX_DEBOUNCE. A
        sysctl's netconf announcement (it names nobody) waits up to ``debounce`` for the touch of its /proc/sys
        write, which names the writer and usually comes a millisecond later."""
        if self._first_touch >= self._event_run + self.pacing.debounce:
            return self._first_touch + (self.pacing.debounce if self._unnamed else 0.0)
        return min(self._last_touch + self.pacing.debounce, self._first_touch + MAX_DEBOUNCE)

    def run_due(self) -> ReconcileResult | None:
        """Reconcile what is due: touched resources (each with the time its own latest touch was seen),
        retries, and resources whose contest backoff ended."""
        self._drain()  # every event that arrived so far: a change it announces is timed by its own touch
        now = time.monotonic()
        seen: dict[str, float] = {}
        if self._touched and now >= self._touch_deadline():
            seen, self._touched = self._touched, {}
            self._unnamed.clear()
            self._event_run = now
        retried = self.retries.take_due(now)
        if retried:  # what a failure blocked comes along
            retried += [rid for rid, state in self.states.items() if state == Status.SKIPPED.value]
        due = {r for r in self._deferred if self.guard.until.get(r, 0) <= now}
        self._deferred -= due
        wanted = sorted(set(seen) | set(retried) | due)
        if not wanted:
            return None
        return self.reconcile("event" if seen else "retry", only=wanted, seen=seen)

    # -- reconciling -----------------------------------------------------------------------------
    def reconcile(self, trigger: str, only: list[str] | None = None, seen: dict[str, float] | None = None
                  ) -> ReconcileResult | None:
        """Reconcile the document (or ``only`` these resources); ``seen`` gives, per resource, when the
        event that made it looked at arrived: the ``seen_at`` of a drift it finds (else: now)."""
        if self.document is None:
            return None
        now = time.monotonic()
        wanted = [r.id for r in self.document.resources] if only is None else only
        allowed = [rid for rid in wanted if not self.guard.backed_off(rid, now)]
        self._deferred.update(set(wanted) - set(allowed))
        if not allowed:
            return None
        result = self.engine.reconcile(self._held_back(self.document),
                                       only=allowed if len(allowed) < len(wanted) or only else None)
        self.metrics.reconcile_seconds.labels(trigger.split(" ")[0]).observe(result.duration)
        finished = self._note_states(result)
        self.last_result = result
        if trigger.startswith("generation"):
            # The status is the new generation's now: reported while its event is spooled (a durable write,
            # 1 to 10 ms on a busy disk; the next report carries the event) and the local view written.
            self.outlet.report_soon()
        if self.applied_generation == self.document.generation:
            self._record_drift(result, seen or {}, finished)
        self._record_outcome(result, trigger)
        if trigger.startswith("generation") or any(r.status is Status.FAILED or is_drift(r) for r in result.resources):
            LOG.info("reconcile (%s): %s", trigger, result.summary())
        self.publish()
        return result

    def _held_back(self, document: Document) -> Document:
        """The document with the resources whose last writer the policy names in monitor mode: their drift
        is found and recorded, not corrected."""
        if not self._held or self.applied_generation != document.generation:
            return document
        return dataclasses.replace(document, resources=[
            dataclasses.replace(r, mode="monitor") if r.id in self._held else r for r in document.resources])

    def _note_states(self, result: ReconcileResult) -> set[str]:
        """Each resource's state and retry; returns those whose part of the generation's apply a retry
        completed (the agent's own work, not drift)."""
        done, finished = time.monotonic(), set()
        for item in result.resources:
            self.states[item.id] = item.status.value
            if item.status is Status.FAILED:
                self.metrics.apply_failures.labels(item.driver).inc()
                self.retries.failed(item.id, done, item.error_kind in ("temporary", "conflict"), item.retry_in)
            elif item.status is not Status.SKIPPED:
                self.retries.succeeded(item.id)
                if item.id in self._unapplied:
                    self._unapplied.discard(item.id)
                    finished.add(item.id)
        return finished

    def _record_outcome(self, result: ReconcileResult, trigger: str) -> None:
        """A new document's outcome, and failures: each said once until its error changes or it recovers."""
        failed = [r for r in result.resources if r.status is Status.FAILED]
        for item in result.resources:
            if item.status not in (Status.FAILED, Status.SKIPPED):
                self._said_failed.pop(item.id, None)
        new = [r for r in failed if r.id not in self._said_failed or self._said_failed[r.id] != r.error]
        if failed and (trigger.startswith("generation") or new):
            self._said_failed.update({r.id: r.error for r in failed})
            detail = "; ".join(f"{r.id}: {r.error}" for r in failed)
            self.outlet.record("apply.failed", f"generation {result.generation}: {detail}", None)
            self.outlet.notify("nodeagent.apply.failed", {"node": self.host, "generation": result.generation,
                                                          "failed": [{"id": r.id, "error": r.error} for r in failed]})
        elif not failed and trigger.startswith("generation"):
            self.outlet.record("apply.succeeded", f"generation {result.generation}: {result.summary()}", None)

    def _record_drift(self, result: ReconcileResult, seen: dict[str, float], finished: set[str]) -> None:
        now = time.monotonic()
        for item in result.resources:
            by, held = self._writer_of(item.id), self._held.get(item.id)
            if not is_drift(item) or item.id in finished or item.id in self._unapplied:
                self._standing.pop(item.id, None)
                self._held.pop(item.id, None)
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
            if held == CONTEST:  # another manager of it (drift_contest_from): a fight at once
                contested = self.guard.contest(item.id, now)
                self._held.pop(item.id, None)  # backed off now; when the backoff ends it is corrected
            # When THIS drift was seen: the latest touch of this very resource, never another's or an earlier one.
            event = DriftEvent.from_result(self.host, result.generation, item, seen.get(item.id) or time.time(),
                                           contested, by, ignored=held == IGNORE)
            LOG.warning("drift %s", event.describe())
            self.recent_drift.append(event)
            self.metrics.drift_events.labels(item.driver, event.state).inc()
            self.metrics.drift_by_unit.labels(by.unit or "").inc()
            self.outlet.record(f"drift.{event.state}", event.describe(), event)
            payload = event.to_dict()
            self.outlet.notify("nodeagent.drift.detected", payload)
            if event.state in ("corrected", "contested"):
                self.outlet.notify(f"nodeagent.drift.{event.state}", payload)

    def _writer_of(self, resource_id: str) -> Writer:
        """Who made the change an event announced for the resource (the command line masked: it may carry a
        secret, the document's or a new one), or why that is unknown."""
        by = self._writers.pop(resource_id, None)
        if by is None:
            return attribution.unknown(self._kinds.get(resource_id, set()), self.hub.files_by)
        if not by.command:
            return by
        secrets = [secret for resource in self.document.resources for secret in resource.secrets]
        return dataclasses.replace(by, command=scrub_command(by.command, secrets))

    # -- what others read ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Where the agent stands; while a change awaits its probes, where it stood before (a generation is
        reported once kept, so a rollout never counts a node that is about to roll back)."""
        if self.confirming is not None:
            return self.confirming
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
                "reconciled_generation": result.generation if result else 0,
                "rolled_back": self.rolled_back.to_dict() if self.rolled_back else None}

    def publish(self) -> None:
        """The local view for ``nodeagent status``, systemd's STATUS= line, and the gauges."""
        status = self.status()
        for state, number in status["counts"].items():
            self.metrics.resources.labels(state).set(number)
        self.metrics.generation.set(status["generation"])
        resources = tuple(ResourceView(id=resource.id, driver=resource.driver, mode=self.document.mode_of(resource),
                                       status=self.states.get(resource.id, "unknown"),
                                       backed_off=self.guard.backed_off(resource.id, time.monotonic()))
                          for resource in (self.document.resources if self.document is not None else ()))
        view = LocalView(node=self.host, resources=resources, drift=tuple(self.recent_drift),
                         attribution={"file": self.hub.files_by, "network": attribution.network_line()},
                         **AgentStatus.from_dict(status).__dict__)
        try:
            # Not durable: a view, written at every start and every reconcile (a power cut's loss is the
            # last one); its fsyncs were 2 ms of each push's way to its report.
            files.write_private(self.outlet.state_dir / "status.json", json.dumps(view.to_dict(), indent=1).encode(),
                                0o644, durable=False)
            self._status_error = None
        except OSError as exc:  # a full state directory must not stop enforcement; said once, not per reconcile
            if self._status_error != exc.errno:
                LOG.error("state directory %s: cannot write status.json (%s); 'nodeagent status' shows an "
                          "older view", self.outlet.state_dir, exc.strerror or exc)
            self._status_error = exc.errno
        sd_notify(f"STATUS={AgentStatus.from_dict(status).line()}")
