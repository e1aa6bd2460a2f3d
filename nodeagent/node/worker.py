"""The agent's work loop: one thread takes documents, runs what its watches touched and what is due a retry,
resyncs on a jittered period and reloads the configuration, so two reconciles never run at once.

Other threads (RPC, the talker, the watch hub) only put work on its bounded queue.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from typing import Any, Callable

from oslo_config import cfg

from nodeagent.process.daemon import HostLogger, sd_notify
from nodeagent.kit.errors import InvalidDocument
from nodeagent.document.model import Document, parse_document
from nodeagent.document.registry import DriverRegistry
from nodeagent.node.cache import DocumentCache
from nodeagent.node.enforcer import Enforcer
from nodeagent.node.guard import ChangeGuard
from nodeagent.wire.protocol import NodeChannel, Refused

LOG = logging.getLogger(__name__)
WORK_QUEUE = 2000  # pushes and wake-ups waiting for the loop
TICK = 10.0  # seconds between turns of an idle loop: systemd's watchdog (WatchdogSec=60) fed, refusals summed up


def work_queue() -> queue.Queue:
    """Bounded: a flood of pushes is dropped (a lost push is healed by the next pull), never queued without end."""
    return queue.Queue(maxsize=WORK_QUEUE)


class Worker:
    """Documents in, reconciles out: the one thread that changes the node."""

    def __init__(self, conf: cfg.ConfigOpts, host: str, channel: NodeChannel, cache: DocumentCache,
                 enforcer: Enforcer, registry: DriverRegistry, work: queue.Queue, refuse: Callable[[str, str], None],
                 taken: Callable[[], None], tick: Callable[[], None], guard: ChangeGuard):
        self.conf = conf
        self.log = HostLogger(LOG, host)
        self.channel = channel
        self.cache = cache
        self.enforcer = enforcer
        self.registry = registry
        self.refuse = refuse
        self.taken = taken  # a new document was applied: tell the coordinator at once
        self.tick = tick  # each turn of the loop (refusals flushed)
        self.guard = guard  # applies new documents: checkpoint, probes, rollback
        self.work = work  # bounded (work_queue()): the enforcer's watch hub wakes the loop through it too

    def queue_work(self, kind: str, item: Any) -> bool:
        """Hand work to the loop without waiting; False when its queue is full (dropped)."""
        try:
            self.work.put_nowait((kind, item))
            return True
        except queue.Full:
            self.log.debug("work queue full: %s dropped", kind)
            return False

    def verify_document(self, sealed: Any, allow_same: bool = True, max_age: float | None = None,
                        cached: bool = False) -> Document:
        """The document in a signed message (``NodeChannel.open_document``), if it is for this node, not older
        than ours, and not another document under the generation we hold (a generation is never reused)."""
        held = self.enforcer.document
        raw = self.channel.open_document(sealed, held.generation if held else -1, allow_same, max_age, cached)
        try:
            document = parse_document(raw, self.registry)
        except InvalidDocument as exc:
            raise Refused(f"invalid document: {exc}") from None
        if held is not None and document.generation == held.generation and document.to_dict() != held.to_dict():
            raise Refused(f"another document with the generation {held.generation} held (a generation is never "
                          "reused: replayed or downgraded?)")
        return document

    def take(self, sealed: Any, source: str) -> bool:
        """Accept and apply a pushed or pulled document; False when refused or already held."""
        try:
            document = self.verify_document(sealed, max_age=self.conf.document_max_age or None)
        except Refused as exc:
            self.refuse(f"document from {source}", str(exc))
            return False
        held = self.enforcer.document
        if held is not None and document.generation == held.generation and document.to_dict() == held.to_dict():
            return False
        if self.guard.rolled_back(document.generation):
            self.log.debug("generation %d from %s not applied: it was rolled back", document.generation, source)
            return False
        self.guard.apply(document, sealed, f"generation {document.generation} from {source}")
        return True

    def load_cached(self) -> None:
        """The last accepted document, checked again: a tampered cache is refused like a forged push."""
        try:
            sealed = self.cache.load()
            document = None if sealed is None else self.verify_document(sealed, cached=True)
        except (Refused, InvalidDocument, OSError) as exc:
            self.refuse("cached document", str(exc))
            return
        if document is not None:
            self.cache.current = sealed
            self.log.info("enforcing cached document, generation %d", document.generation)
            self.enforcer.apply_document(document, "start")

    def run(self, stopping: threading.Event) -> None:
        """Until ``stopping``: documents, touches and retries as they come, a resync now and then."""
        next_resync = time.monotonic() + self._resync_delay()
        while not stopping.is_set():
            sd_notify("WATCHDOG=1")
            self.tick()
            now = time.monotonic()
            if now >= next_resync:
                self.enforcer.reconcile("periodic resync")
                next_resync = time.monotonic() + self._resync_delay()
            due = self.enforcer.due_at()
            if due is not None and now >= due:
                self.enforcer.run_due()
                continue
            wake = min(next_resync, due if due is not None else next_resync, now + TICK)
            try:
                kind, item = self.work.get(timeout=max(0.005, wake - time.monotonic()))
            except queue.Empty:
                continue
            if kind == "document" and self.take(*item):
                self.taken()
            elif kind == "reload":
                self._reload()

    def _resync_delay(self) -> float:
        return self.conf.resync_interval * random.uniform(0.9, 1.0)

    def _reload(self) -> None:
        try:
            self.conf.reload_config_files()
            self.log.info("configuration reloaded: report_interval %d, resync_interval %d",
                          self.conf.report_interval, self.conf.resync_interval)
        except Exception as exc:
            self.log.error("configuration not reloaded: %s", exc)
