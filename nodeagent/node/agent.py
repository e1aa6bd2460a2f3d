"""The agent (``nodeagent run`` runs one): keep this node true to the document the coordinator signed.

It enforces its last accepted document at once (it works with no broker), then
pulls its document, heartbeats with health and status, applies pushed documents,
answers plans, and resyncs periodically. One worker (the loop thread) reconciles,
so two reconciles never run at once; RPC threads only queue work or read.

An agent is composed of parts with one idea each: its ``channel`` (keys, sequence, trust: every envelope
is sealed and opened there), its ``talker`` (heartbeat, pull, the event spool), its ``cache`` (the last
accepted document), its ``broker`` link (transports, RPC server, notifications) and its ``enforcer``
(reconcile, watches, retries). The agent owns the work queue and the two threads that run them.

An agent is an object, not a process: ``start()`` and ``stop()`` work from any thread,
signals belong to the process that hosts it (``nodeagent run``), and its transports
may be handed in and shared, so one process can host many agents.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from oslo_config import cfg

from nodeagent.node.options import make_context
from nodeagent.kit import files
from nodeagent.process.daemon import HostLogger, bind_host, sd_notify
from nodeagent.process.metrics import AgentMetrics
from nodeagent.document.model import Document, fold_host
from nodeagent.document.registry import DriverRegistry
from nodeagent.node.broker import BrokerLink
from nodeagent.node.cache import DocumentCache
from nodeagent.node.drift import Spool
from nodeagent.node.enforcer import Enforcer, Outlet, Pacing
from nodeagent.node.engine import Engine
from nodeagent.node import probes
from nodeagent.node.guard import ChangeGuard
from nodeagent.node.talker import Talker
from nodeagent.node.worker import Worker, work_queue
from nodeagent.wire import rpc as messaging
from nodeagent.wire.messages import AgentStatus, DriftEvent, Plan, Refusal
from nodeagent.wire.protocol import NodeChannel, Refused
from nodeagent.wire.refusals import RefusalLog, category

LOG = logging.getLogger(__name__)


class Agent:
    """One node's agent: ``start()`` it, ``stop()`` it; ``run()`` does both around the caller's wait.

    ``transport`` (RPC) and ``notification_transport`` may be shared by many agents of one fleet
    (made from a configuration with the same transport_url and control_exchange); by default the
    agent makes its own, on first use, and closes them when it stops. The constructor only
    remembers: no directory, key, thread or connection is made before ``start()``.
    """

    def __init__(self, conf: cfg.ConfigOpts, transport: Any = None, notification_transport: Any = None,
                 facts: Callable[[], dict[str, Any]] | None = None):
        """``facts``: what the node reports as its facts, instead of reading its namespace (the fleet simulator:
        many agents in one process, each its own addresses); its interfaces are then not watched."""
        messaging.register_opts(conf)
        messaging.agent_defaults(conf)
        self.gather_facts = facts
        self.conf = conf
        self.host = fold_host(conf.host)  # as the coordinator reads it (DNS compares names so)
        self.log = HostLogger(LOG, self.host)
        self.state_dir = Path(conf.state_dir)
        self.channel = NodeChannel(self.host, self.state_dir, Path(conf.node_key or self.state_dir / "node.key"),
                                   conf.coordinator_public_key, self._coordinator_rotated)
        self.cache = DocumentCache(self.state_dir)
        self.broker = BrokerLink(conf, self.host, transport, notification_transport)
        self.talker: Talker | None = None  # made by prepare(), with the spool it reads
        self.registry = DriverRegistry.from_entry_points()
        self.ctx = make_context(conf, conf.root, conf.netns)
        self.metrics = AgentMetrics()
        work = work_queue()
        self.facts_changed = threading.Event()  # set by the watch hub when the node's interfaces change
        self.facts_changed.set()  # gathered at the first heartbeat
        self.enforcer = Enforcer(Engine(self.registry, self.ctx),
                                 Outlet(self.host, self.state_dir, self.record, self.broker.notify, self.metrics,
                                        self._taken),
                                 Pacing.from_conf(conf), inbox=work,
                                 interfaces_changed=self.facts_changed.set if facts is None else None)
        self.stopping = threading.Event()
        self.guard = ChangeGuard(self.enforcer, self.cache, self.state_dir, lambda: self.conf.rollback_timeout,
                                 probes.broker_check(lambda timeout: messaging.broker_answers(conf, timeout),
                                                     messaging.broker_hosts(conf)), self.stopping)
        self.worker = Worker(conf, self.host, self.channel, self.cache, self.enforcer, self.registry, work,
                             self.refuse, self._taken, self._tick, self.guard)
        self.stopped = threading.Event()
        self.failed = False  # the loop ended on an error (the process hosting the agent exits non-zero)
        self.refusals = RefusalLog(self._record_refusal)
        self._life = threading.Lock()  # start() and stop() against each other
        self._loop: threading.Thread | None = None
        self._talker: threading.Thread | None = None

    def prepare(self) -> None:
        """The state directory, the keys (made on first use), the sequence and the event spool."""
        if self.talker is not None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in ("document.json", "status.json"):  # what a kill in the middle of a write left
            files.remove_leftovers(self.state_dir / name)
        self.channel.open()
        self.guard.load_record()
        self.talker = Talker(self.host, self.channel, Spool(self.state_dir / "spool"), self.enforcer, self.ctx,
                             self.metrics, self.broker.coordinator, self._pulled, self.refuse, self.stopping,
                             self.facts_changed, self.gather_facts, cast=self.broker.send_heartbeat)

    @property
    def server(self) -> Any:
        """The RPC server while the agent listens, else None."""
        return self.broker.server

    @property
    def document(self) -> Document | None:
        return self.enforcer.document

    def plan_request(self, sealed: Any) -> dict[str, Any]:
        """The diff against a signed document, nothing applied; the answer signed for this very request."""
        try:
            self.channel.open_request(sealed)
            document = self.worker.verify_document(sealed)
        except Refused as exc:
            self.refuse("plan request", str(exc))
            return self.channel.reply(sealed, Refusal(refused=str(exc)).to_dict())
        return self.channel.reply(sealed, Plan.of(self.enforcer.engine.reconcile(document, dry_run=True)).to_dict())

    def report_next(self) -> None:
        """The coordinator asks for a full report (it has something to say); before prepare() nothing is sent."""
        if self.talker is not None:
            self.talker.report_next()

    def queue_work(self, kind: str, item: Any) -> bool:
        """Hand work to the loop without waiting (an RPC thread's push); False when its queue is full."""
        return self.worker.queue_work(kind, item)

    def _pulled(self, sealed: Any) -> None:
        self.worker.queue_work("document", (sealed, "the coordinator"))

    def _taken(self) -> None:
        self.talker.report_soon.set()  # tell the coordinator at once

    def _tick(self) -> None:
        self.refusals.flush()

    # -- what the agent tells --------------------------------------------------------------------
    def record(self, kind: str, detail: str, drift: DriftEvent | None = None) -> None:
        """An event for the coordinator, spooled until it took it."""
        self.talker.record(kind, detail, drift)

    def refuse(self, what: str, reason: str) -> None:
        """Logged each time; recorded and notified once per kind of refusal per minute, with a count."""
        if self.refusals.refuse(f"{what}: {category(reason)}", self.host, "state.refused", f"{what}: {reason}"):
            self.log.warning("refused %s: %s", what, reason)
        else:
            self.log.debug("refused %s: %s", what, reason)

    def _record_refusal(self, node: str | None, kind: str, detail: str) -> None:
        self.record(kind, detail)
        self.broker.notify("nodeagent.state.refused", {"node": self.host, "detail": detail})

    def _coordinator_rotated(self, new_key: str) -> None:
        self.log.warning("the coordinator rotated its signing key: now trusting %s", new_key)
        self.record("coordinator.rekeyed", f"now trusting {new_key}")

    # -- life: start, the loop, the talker, stop ---------------------------------------------------
    def start(self) -> None:
        """Enforce the cached document, then follow the coordinator, in threads of the agent's own.

        Returns at once (from any thread; a second call does nothing). The loop thread reconciles
        and keeps the systemd watchdog fed; the talker thread talks to the broker, whose calls may
        block for as long as it is away.
        """
        with self._life:
            if self.stopping.is_set():
                raise RuntimeError(f"agent {self.host} was stopped: make a new one")
            if self._loop is not None:
                return
            self.prepare()
            self.broker.start_notifications()
            self._loop = threading.Thread(target=self._run_loop, name=f"agent {self.host}", daemon=True)
            self._talker = threading.Thread(target=self._talk, name=f"coordinator {self.host}", daemon=True)
            self._loop.start()

    def run(self) -> None:
        """``start()``, then wait in the calling thread until ``stop()`` (called from another thread)."""
        self.start()
        self.stopped.wait()

    def reload(self) -> None:
        """Read the configuration files again (SIGHUP), in the loop, between two reconciles."""
        self.worker.queue_work("reload", None)

    def stop(self) -> None:
        """Stop promptly, from any thread, any number of times; returns once stopped.

        The loop ends after the reconcile in hand, the RPC server stops listening, queued
        notifications get a short chance to leave, and the transports the agent made itself
        are closed (shared ones are their owner's). A call to the coordinator in flight is not
        waited for: it ends by its own timeout and its answer is dropped.
        """
        with self._life:
            first = not self.stopping.is_set()
            self.stopping.set()
        if not first:
            self.stopped.wait()
            return
        self.worker.queue_work("stop", None)
        if self.talker is not None:
            self.talker.report_soon.set()  # wakes the talker
        if self._loop is not None and self._loop is not threading.current_thread():
            self._loop.join()
        if not self.broker.close():
            self.log.warning("stopped; the broker connections close by themselves once it is back")
        self.stopped.set()
        self.log.info("stopped")

    def _run_loop(self) -> None:
        bind_host(self.host)
        try:
            self.guard.recover()  # a change a crash left in doubt is rolled back before anything else
            self.worker.load_cached()
            if self.enforcer.document is None:
                self.enforcer.start_watches()  # the node's own interfaces are heard from the start
            sd_notify(f"READY=1\nSTATUS={AgentStatus.from_dict(self.enforcer.status()).line()}")
            self._talker.start()
            self.worker.run(self.stopping)
        except Exception:  # the process hosting this agent hears of it: stopped, with the reason
            self.log.exception("the agent's loop failed")
            self.failed = True
            threading.Thread(target=self.stop, name=f"stop {self.host}", daemon=True).start()
        finally:
            self.enforcer.stop_watches()

    def _talk(self) -> None:
        """Listen for the coordinator, then heartbeat (pulling when told to or after a reconnect)."""
        bind_host(self.host)
        while not self.stopping.is_set() and not self.broker.listen(self):
            self.stopping.wait(self.conf.report_interval)
        self.talker.run(lambda: self.conf.report_interval)
