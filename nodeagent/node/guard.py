"""A new document's network change, guarded: checkpoint, apply, probe, and roll back what cut the node off.

The classic way to lose a node is to put the interface that carries its management traffic into a bridge
without moving its address. So before a new generation that changes network resources is applied, the
guard runs the probes (the agent's broker, and the document's pings and TCP connects) and keeps those that
answer; writes the checkpoint; applies; and gives the probes ``rollback_timeout`` seconds to answer again.
If one does not, the checkpoint is restored through the drivers, the agent goes back to the document it
held before, checks the probes again, and reports ``rolled_back`` naming the probe (status, event,
notification, metric). That generation is never applied again: the agent waits for a newer one.

A checkpoint found at start (the agent died during a change) is rolled back before anything else.

Not guarded: the first enforcement of the cached document at start, and drift corrections (they bring the
node back to a document that was already kept).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from nodeagent.document.model import Document
from nodeagent.document.probes import BROKER, parse_probes
from nodeagent.kit import files
from nodeagent.kit.errors import one_line
from nodeagent.kit.result import ReconcileResult, Status
from nodeagent.node import checkpoint, probes
from nodeagent.node.cache import DocumentCache
from nodeagent.node.checkpoint import Checkpoint, CheckpointFile
from nodeagent.node.enforcer import Enforcer
from nodeagent.process.daemon import HostLogger, sd_notify
from nodeagent.wire.messages import Malformed, Rollback

LOG = logging.getLogger(__name__)
PROBE_TIMEOUT = 2.0  # seconds one attempt of one probe may take
RECOVERY_WAIT = 30.0  # at most this long at start for the probes to answer after restoring a checkpoint
INTERRUPTED = "interrupted"  # the probe named when the agent stopped before the probes decided


class ChangeGuard:
    """Applies new documents for the agent's work loop, and rolls back those that cut the node off."""

    def __init__(self, enforcer: Enforcer, cache: DocumentCache, state_dir: Path, timeout: Callable[[], float],
                 broker: probes.Check | None = None, stopping: threading.Event | None = None):
        """``timeout``: the agent's rollback_timeout (a document may set its own); ``broker``: the probe of
        the agent's broker, when it has one; ``stopping``: set when the agent stops (a change still in doubt
        is then rolled back at the next start)."""
        self.enforcer = enforcer
        self.cache = cache
        self.timeout = timeout
        self.broker = broker
        self.stopping = stopping or threading.Event()
        self.checkpoints = CheckpointFile(state_dir)
        self.record_path = state_dir / "rollback.json"
        self.log = HostLogger(LOG, enforcer.host)

    @property
    def engine(self) -> Any:
        return self.enforcer.engine

    # -- the record of the last rollback --------------------------------------------------------------
    def load_record(self) -> None:
        """The rollback a previous run recorded (its generation is not applied again)."""
        try:
            if self.record_path.exists():
                self.enforcer.rolled_back = Rollback.from_dict(json.loads(self.record_path.read_bytes()))
        except (OSError, ValueError, Malformed) as exc:
            self.log.error("%s cannot be read (%s): ignored", self.record_path, exc)

    def rolled_back(self, generation: int) -> bool:
        """Whether ``generation`` is the one this agent rolled back (never applied again)."""
        record = self.enforcer.rolled_back
        return record is not None and record.generation == generation

    # -- a new document ----------------------------------------------------------------------------------
    def apply(self, document: Document, sealed: dict[str, Any], trigger: str) -> ReconcileResult:
        """Cache and apply ``document`` (``sealed`` as it came), guarded when it changes network resources and
        some probe answers now."""
        previous_sealed = self.cache.current
        self.cache.save(sealed)
        undo = checkpoint.take(self.engine, document)
        if not undo:
            return self._kept(document, self.enforcer.apply_document(document, trigger))
        checks = self._checks(document.probes)
        passing = []
        for probe, entry in checks.items():
            reason = entry["check"](PROBE_TIMEOUT)
            if reason is None:
                passing.append(probe)
            else:
                self.log.info("probe %s does not answer before the change to generation %d: not counted (%s)",
                              probe, document.generation, reason)
        if not passing:
            self.log.warning("generation %d changes %s, but no probe answers before the change (%s): applied "
                             "without a guard", document.generation, ", ".join(e["id"] for e in undo),
                             ", ".join(checks) or "no probes")
            return self._kept(document, self.enforcer.apply_document(document, trigger))
        timeout = document.rollback_timeout or float(self.timeout())
        saved = Checkpoint(document.node, document.generation, tuple(undo), previous_sealed,
                           tuple(checks[probe]["spec"] for probe in passing), timeout)
        try:
            self.checkpoints.save(saved)
        except OSError as exc:  # still guarded while this run lasts; a crash would leave the change in place
            self.log.error("checkpoint not written (%s): a crash during this change would not roll it back",
                           exc.strerror or exc)
        previous = self.enforcer.document
        self.enforcer.confirming = self.enforcer.status()  # reported until the probes decide
        try:
            result = self.enforcer.apply_document(document, trigger)
            failed = self._wait(checks, passing, timeout)
        finally:
            self.enforcer.confirming = None
        if failed is None:
            self.checkpoints.clear()
            self.log.info("generation %d kept: %s answered after the change", document.generation, ", ".join(passing))
            return self._kept(document, result)
        if failed[0] == INTERRUPTED:  # the agent stops: the next start rolls back
            self.log.warning("stopping during the change to generation %d: its checkpoint is rolled back at the "
                             "next start", document.generation)
            return result
        self.log.error("generation %d: probe %s failed after the change (%s): rolling back", document.generation,
                       *failed)
        restored = checkpoint.restore(self.engine, saved)
        self.cache.restore(saved.previous)
        if previous is not None:
            self.enforcer.apply_document(previous, f"rollback to generation {previous.generation}")
        else:
            self.enforcer.release()
        answered = self._wait(checks, passing, timeout) is None
        self._record(Rollback(generation=document.generation, probe=failed[0], detail=one_line(failed[1], 900),
                              at=time.time(), restored=answered), restored)
        self.checkpoints.clear()
        return result

    def recover(self) -> None:
        """At start, before anything else: roll back the change a checkpoint says was in flight."""
        saved = self.checkpoints.load()
        if saved is None:
            return
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(saved.taken_at))
        self.log.warning("the change to generation %d (checkpoint of %s) was interrupted: rolling back %s",
                         saved.generation, when, ", ".join(saved.resources()))
        restored = checkpoint.restore(self.engine, saved)
        self.cache.restore(saved.previous)  # the start enforces the document held before the change
        try:
            checks = self._checks(parse_probes([p for p in saved.probes if p.get("id") != BROKER]))
        except ValueError as exc:  # a checkpoint written by this agent: only a damaged file gets here
            self.log.error("probes of the checkpoint not read: %s", exc)
            checks = {}
        counted = [p["id"] for p in saved.probes if p.get("id") in checks]
        answered = self._wait(checks, counted, min(saved.timeout, RECOVERY_WAIT)) is None
        self._record(Rollback(generation=saved.generation, probe=INTERRUPTED, at=time.time(), restored=answered,
                              detail=f"the agent stopped during the change ({when}), before its probes answered"),
                     restored)
        self.checkpoints.clear()

    # -- parts ---------------------------------------------------------------------------------------------
    def _checks(self, document_probes: tuple[Any, ...]) -> dict[str, dict[str, Any]]:
        """Each probe id: its check and its spec (as the checkpoint keeps it); the broker's first."""
        found: dict[str, dict[str, Any]] = {}
        if self.broker is not None:
            found[BROKER] = {"check": self.broker, "spec": {"id": BROKER}}
        for probe in document_probes:
            found[probe.id] = {"check": probes.bound(probe, self.engine.ctx), "spec": probe.to_dict()}
        return found

    def _wait(self, checks: dict[str, dict[str, Any]], counted: list[str], timeout: float) -> tuple[str, str] | None:
        """None once every counted probe answered (each once) within ``timeout``; else the first that did not
        and why, or (INTERRUPTED, ...) when the agent stops."""
        deadline = time.monotonic() + timeout
        pending, why = list(counted), {}
        while pending:
            for probe in list(pending):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                reason = checks[probe]["check"](min(PROBE_TIMEOUT, left))
                if reason is None:
                    pending.remove(probe)
                else:
                    why[probe] = reason
            sd_notify("WATCHDOG=1")
            if not pending:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return pending[0], why.get(pending[0], f"no answer within {timeout:g} s")
            if self.stopping.wait(min(0.5, left)):
                return INTERRUPTED, "the agent stopped"
        return None

    def _kept(self, document: Document, result: ReconcileResult) -> ReconcileResult:
        """A newer generation applied and kept: the last rollback is history."""
        record = self.enforcer.rolled_back
        if record is not None and document.generation > record.generation:
            self.enforcer.rolled_back = None
            self.record_path.unlink(missing_ok=True)
            self.enforcer.publish()
        return result

    def _record(self, rollback: Rollback, restored: ReconcileResult) -> None:
        """Status, ``rollback.json``, the event, the notification, the metric, the log."""
        self.enforcer.rolled_back = rollback
        try:
            files.write_private(self.record_path, json.dumps(rollback.to_dict()).encode())
        except OSError as exc:
            self.log.error("%s not written (%s): a restart may apply generation %d again", self.record_path,
                           exc.strerror or exc, rollback.generation)
        detail = rollback.describe()
        not_restored = [r.id.rsplit(".restore", 1)[0] for r in restored.resources if r.status is Status.FAILED]
        if not_restored:
            detail += f"; not restored: {', '.join(dict.fromkeys(not_restored))}"
        if not rollback.restored:
            detail += "; the probes still fail after the restore"
        outlet = self.enforcer.outlet
        outlet.record("rolled_back", detail, None)
        outlet.notify("nodeagent.node.rolled_back", {"node": self.enforcer.host, **rollback.to_dict()})
        outlet.metrics.rollbacks.labels(rollback.probe).inc()
        self.log.error("%s", detail)
        self.enforcer.publish()
