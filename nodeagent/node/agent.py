"""The agent (``nodeagent run`` runs one): keep this node true to the document the coordinator signed.

It enforces its last accepted document at once (it works with no broker), then
pulls its document, heartbeats with health and status, applies pushed documents,
answers plans, and resyncs periodically. One worker (the loop thread) reconciles,
so two reconciles never run at once; RPC threads only queue work or read.

An agent is an object, not a process: ``start()`` and ``stop()`` work from any thread,
signals belong to the process that hosts it (``nodeagent run``), and its transports
may be handed in and shared, so one process can host many agents.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import random
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from oslo_config import cfg

from nodeagent.wire import box, rpc as messaging, trust
from nodeagent.wire.messages import (AgentStatus, DriftEvent, Event, Malformed, Plan, Refusal, Report, ReportAnswer,
                                     Request, new_id)

from nodeagent.kit import config, files, loading

from nodeagent.node import facts
from nodeagent.kit.daemon import HostLogger, bind_host, sd_notify
from nodeagent.node.drift import Spool
from nodeagent.node.enforcer import Enforcer, Outlet, Pacing
from nodeagent.node.engine import Engine
from nodeagent.kit.errors import InvalidDocument, preview
from nodeagent.kit.metrics import AgentMetrics
from nodeagent.kit.model import Document, parse_document
from nodeagent.wire.outbox import Outbox
from nodeagent.wire.refusals import RefusalLog, category
from nodeagent.wire.sequence import Sequence
from nodeagent.kit.registry import DriverRegistry

LOG = logging.getLogger(__name__)
REQUEST_MAX_AGE = 300  # seconds a signed request (plan, facts) stays valid
WORK_QUEUE = 2000  # pushes and wake-ups waiting for the main loop


class Agent:
    """One node's agent: ``start()`` it, ``stop()`` it; ``run()`` does both around the caller's wait.

    ``transport`` (RPC) and ``notification_transport`` may be shared by many agents of one fleet
    (made from a configuration with the same transport_url and control_exchange); by default the
    agent makes its own, on first use, and closes them when it stops. The constructor only
    remembers: no directory, key, thread or connection is made before ``start()``.
    """

    def __init__(self, conf: cfg.ConfigOpts, transport: Any = None, notification_transport: Any = None):
        messaging.register_opts(conf)
        self.conf = conf
        self.host = conf.host
        self.log = HostLogger(LOG, self.host)
        self.state_dir = Path(conf.state_dir)
        self.node_key_path = Path(conf.node_key or self.state_dir / "node.key")
        self.node_key = None  # the keys, the sequence and the spool are read (or made) by prepare()
        self.box_keys: list[Any] = []
        self.sequence: Sequence | None = None
        self.spool: Spool | None = None
        self.reply_refused = False
        self.registry = DriverRegistry.from_entry_points()
        self.ctx = config.make_context(conf, conf.root, conf.netns)
        self.metrics = AgentMetrics()
        # Bounded: a flood of pushes is dropped (a lost push is healed by the next pull), never queued without end.
        self.work: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=WORK_QUEUE)
        self.enforcer = Enforcer(Engine(self.registry, self.ctx),
                                 Outlet(self.host, self.state_dir, self.record, self.notify, self.metrics),
                                 Pacing.from_conf(conf), inbox=self.work)
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        self.failed = False  # the loop ended on an error (the process hosting the agent exits non-zero)
        self.report_soon = threading.Event()
        self.server = None
        self.connected: bool | None = None  # None: not tried yet
        self.facts_sent: str | None = None
        self._transport = transport
        self._notification_transport = notification_transport
        self._own_transports: list[Any] = []  # made here on first use: closed by stop()
        self._notifier = None
        self._lock = threading.Lock()
        self._life = threading.Lock()  # start() and stop() against each other, and the server's handover
        self._loop: threading.Thread | None = None
        self._talker: threading.Thread | None = None
        # Notifications leave from a thread of their own (made by start()): the loop only queues them.
        self.notifications: Outbox | None = None
        self.refusals = RefusalLog(self._record_refusal)

    def prepare(self) -> None:
        """The state directory, the keys (made on first use), the sequence and the event spool."""
        if self.spool is not None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in ("document.json", "status.json"):  # what a kill in the middle of a write left
            files.remove_leftovers(self.state_dir / name)
        self.node_key = trust.load_or_create_key(self.node_key_path)
        # Documents come encrypted for this key; the previous one (after a re-key) still opens the cache.
        self.box_keys = [box.load_or_create_key(path) for path in box_key_paths(self.state_dir)
                         if path.exists() or path == self.state_dir / "node.box"]
        self.sequence = Sequence(self.state_dir / "sequence")
        self.spool = Spool(self.state_dir / "spool")

    # -- trust -----------------------------------------------------------------------------------
    @property
    def rotated_key_path(self) -> Path:
        return self.state_dir / "coordinator.pub"

    def coordinator_key(self):
        """The configured key, or the one it endorsed when the coordinator rotated its key."""
        path = self.rotated_key_path if self.rotated_key_path.exists() else self.conf.coordinator_public_key
        return trust.load_public_key(path)

    def unseal(self, sealed: Any) -> dict[str, Any]:
        """A coordinator's message; a new coordinator key is trusted when the trusted one endorses it."""
        trusted = self.coordinator_key()
        try:
            return trust.unseal(sealed, trusted)
        except trust.Refused:
            new = sealed.get("key") if isinstance(sealed, dict) else None
            if not isinstance(new, str) or not trust.endorses(trusted, sealed.get("endorsement"), new, "rotate"):
                raise
        payload = trust.unseal(sealed, trust.public_from_text(new))
        files.write_private(self.rotated_key_path, (new + "\n").encode(), 0o644)
        self.log.warning("the coordinator rotated its signing key: now trusting %s", new)
        self.record("coordinator.rekeyed", f"now trusting {new}")
        return payload

    def verify_document(self, sealed: Any, allow_same: bool = True) -> Document:
        """The document in a signed message, if it is for this node and not older than ours."""
        payload = self.unseal(sealed)
        if payload.get("kind") != "document":
            raise trust.Refused("not a document")
        if "encrypted" in payload:
            if payload.get("node") != self.host:
                raise trust.Refused(f"meant for node '{str(payload.get('node'))[:64]}', this is '{self.host}'")
            payload = {"document": self.decrypt(payload["encrypted"], f"{self.host}:{payload.get('generation')}")}
        raw = payload.get("document")
        if not isinstance(raw, dict):
            raise trust.Refused("not a document")
        if raw.get("node") != self.host:
            raise trust.Refused(f"meant for node '{raw.get('node')}', this is '{self.host}'")
        current = self.document.generation if self.document else -1
        generation = raw.get("generation")
        if isinstance(generation, int) and (generation < current or (generation == current and not allow_same)):
            raise trust.Refused(f"stale: generation {generation} is older than the generation {current} held")
        try:
            return parse_document(raw, self.registry)
        except InvalidDocument as exc:
            raise trust.Refused(f"invalid document: {exc}") from None

    def decrypt(self, encrypted: Any, aad: str) -> Any:
        for key in self.box_keys:
            try:
                return box.decrypt(key, encrypted, aad.encode())
            except trust.Refused as exc:
                error = exc
        raise error

    def verify_request(self, sealed: Any) -> dict[str, Any]:
        payload = self.unseal(sealed)
        issued_at = payload.get("issued_at", 0)
        if isinstance(issued_at, bool) or not isinstance(issued_at, (int, float)) or issued_at != issued_at:
            raise trust.Refused(f"malformed request: issued_at is {preview(issued_at)}")
        if time.time() - issued_at > REQUEST_MAX_AGE:
            raise trust.Refused("request too old")
        return payload

    def refuse(self, what: str, reason: str) -> None:
        """Logged each time; recorded and notified once per kind of refusal per minute, with a count."""
        if self.refusals.refuse(f"{what}: {category(reason)}", self.host, "state.refused", f"{what}: {reason}"):
            self.log.warning("refused %s: %s", what, reason)
        else:
            self.log.debug("refused %s: %s", what, reason)

    def _record_refusal(self, node: str | None, kind: str, detail: str) -> None:
        self.record(kind, detail)
        self.notify("nodeagent.state.refused", {"node": self.host, "detail": detail})

    @property
    def document(self) -> Document | None:
        return self.enforcer.document

    def record(self, kind: str, detail: str, drift: DriftEvent | None = None) -> None:
        """Spool an event for the coordinator (delivered in order, at least once; it keeps each once).
        A drift's event carries the drift's id, so the coordinator keeps the pair once."""
        event = Event(id=drift.id if drift else new_id(), type=kind, detail=detail, drift=drift)
        try:
            with self._lock:
                self.spool.append(event)
        except OSError as exc:
            self.log.error("state directory %s: event %s not spooled (%s): %s", self.state_dir, kind,
                           exc.strerror or exc, detail[:200])
            return
        self.metrics.spooled.set(len(self.spool))
        self.report_soon.set()

    # -- state -----------------------------------------------------------------------------------
    @property
    def cache_path(self) -> Path:
        return self.state_dir / "document.json"

    def load_cached(self) -> None:
        """The last accepted document, checked again: a tampered cache is refused like a forged push."""
        if not self.cache_path.exists():
            return
        try:
            sealed = loading.loads(self.cache_path.read_bytes(), str(self.cache_path), as_json=True)
            document = self.verify_document(sealed)
        except (trust.Refused, InvalidDocument, OSError) as exc:
            self.refuse("cached document", str(exc))
            return
        self.log.info("enforcing cached document, generation %d", document.generation)
        self.enforcer.apply_document(document, "start")

    def accept(self, sealed: dict[str, Any]) -> None:
        """Cache the document; when the state directory is full, say so and enforce it all the same."""
        try:
            files.write_private(self.cache_path, json.dumps(sealed).encode())
        except OSError as exc:
            LOG.error("state directory %s: cannot cache the new document (%s); it is enforced, but a restart "
                      "would start from the previous one", self.state_dir, exc.strerror or exc)

    def take(self, sealed: dict[str, Any], source: str) -> bool:
        """Accept and apply a pushed or pulled document; False when refused or already held."""
        try:
            document = self.verify_document(sealed)
        except trust.Refused as exc:
            self.refuse(f"document from {source}", str(exc))
            return False
        if self.document is not None and document.generation == self.document.generation \
                and document.to_dict() == self.document.to_dict():
            return False
        self.accept(sealed)
        self.enforcer.apply_document(document, f"generation {document.generation} from {source}")
        return True

    # -- talking to the coordinator --------------------------------------------------------------
    @property
    def coordinator(self) -> messaging.CoordinatorAPI:
        # A heartbeat answered later than two intervals is as good as lost: try again next time.
        timeout = max(1, min(self.conf.rpc_response_timeout, 2 * self.conf.report_interval))
        return messaging.CoordinatorAPI(self._rpc_transport(), timeout=timeout)

    def notify(self, event_type: str, payload: dict[str, Any]) -> None:
        """Queue a notification; never waits (a broker outage costs notifications, never enforcement).
        Before start() (an agent used only to check messages) there is no one to send it: dropped."""
        if self.notifications is not None:
            self.notifications.put(event_type, payload)

    def _send_notification(self, event_type: str, payload: dict[str, Any]) -> None:
        if self._notifier is None:
            if self._notification_transport is None:
                self._notification_transport = messaging.notification_transport(self.conf)
                self._own_transports.append(self._notification_transport)
            self._notifier = messaging.notifier(self.conf, f"nodeagent.{self.host}", retry=1,
                                                transport=self._notification_transport)
        self._notifier.info({}, event_type, payload)

    def report(self, include_facts: bool = False) -> ReportAnswer | None:
        """Heartbeat: health, status, new events, and facts when they changed. None if unreachable."""
        node_facts = facts.gather_facts(self.ctx, self.host)
        digest = hashlib.sha256(json.dumps(node_facts, sort_keys=True).encode()).hexdigest()
        with self._lock:
            spooled = self.spool.pending()
        # Processes show the daemon's name, not the unit's: neutron-l3-agent, not neutron-l3-agent.service.
        services = [r.spec["name"].removesuffix(".service") for r in self.document.resources
                    if r.driver == "service"] if self.document else []
        report = Report(node=self.host, seq=0, sent_at=time.time(),
                        status=AgentStatus.from_dict(self.enforcer.status()),
                        health=facts.health(str(self.state_dir), services), events=tuple(e for _, e in spooled),
                        facts=node_facts if include_facts or digest != self.facts_sent else None)
        answer = self.ask("report_state", report)
        try:
            answer = None if answer is None else ReportAnswer.from_dict(answer)
        except Malformed as exc:
            self.refuse("answer to report_state", str(exc))
            return None
        if answer is None:
            return None
        if answer.taken:
            with self._lock:
                self.spool.acknowledge([path for path, _ in spooled])
                remaining = len(self.spool)
            self.metrics.spooled.set(remaining)
            if remaining:
                self.report_soon.set()
        if report.facts is not None and answer.taken:
            self.facts_sent = digest
        was_connected, self.connected = self.connected, True
        if answer.status == "pending":
            LOG.warning("waiting for the operator to accept this node: nodeagentctl node accept %s", self.host)
        elif answer.status == "refused":
            LOG.error("the coordinator refused this node's report: %s", answer.reason)
        elif not was_connected or answer.status in ("new", "revived") or \
                (answer.desired_generation or 0) > self.enforcer.status()["generation"]:
            self.pull()
        return answer

    def pull(self) -> None:
        sealed = self.ask("fetch_state", Request(node=self.host, seq=0, sent_at=time.time()))
        if sealed:
            self.queue_work("document", (sealed, "the coordinator"))

    def queue_work(self, kind: str, item: Any) -> bool:
        """Hand work to the main loop without waiting; False when its queue is full (dropped)."""
        try:
            self.work.put_nowait((kind, item))
            return True
        except queue.Full:
            self.log.debug("work queue full: %s dropped", kind)
            return False

    def ask(self, method: str, request: Request) -> Any:
        """Call the coordinator with a signed, sequenced request; its answer if signed for this very request,
        else None (as if unreachable: nothing is acknowledged on an answer that cannot be trusted)."""
        if self.stopping.is_set():  # stopped while a heartbeat was in flight: nothing more to say
            return None
        sequence = self.sequence.next()
        previous = trust.previous_key_path(self.node_key_path)
        # re-keyed: the accepted key vouches for the new one
        rekey = trust.endorse(trust.load_private_key(previous), trust.public_text(self.node_key.public_key()),
                              "rekey") if previous.exists() else None
        request = replace(request, seq=sequence, box_key=box.public_text(self.box_keys[0].public_key()), rekey=rekey)
        try:
            sealed = getattr(self.coordinator, method)(trust.seal(request.to_dict(), self.node_key))
        except Exception as exc:
            if self.connected is not False and not self.stopping.is_set():
                LOG.warning("coordinator unreachable (working from the cached document): %s", exc)
            self.connected = False
            return None
        try:
            reply = self.unseal(sealed)
            if reply.get("kind") != "reply" or reply.get("node") != self.host or reply.get("seq") != sequence:
                raise trust.Refused("an answer to another request")
        except trust.Refused as exc:
            if not self.reply_refused:  # recorded once per run of bad answers
                self.refuse(f"answer to {method}", str(exc))
            self.reply_refused = True
            return None
        self.reply_refused = False
        answer = reply.get("answer")
        if previous.exists() and method == "report_state" and isinstance(answer, dict) \
                and answer.get("status") not in ("refused", None):
            previous.unlink()  # the coordinator took the new key
        return answer

    # -- what the coordinator asks (through messaging.AgentEndpoint) -----------------------------
    def plan_request(self, sealed: Any) -> dict[str, Any]:
        """The diff against a signed document, nothing applied; the answer signed for this very request."""
        try:
            self.verify_request(sealed)
            document = self.verify_document(sealed)
        except trust.Refused as exc:
            self.refuse("plan request", str(exc))
            return self.answer(sealed, Refusal(refused=str(exc)).to_dict())
        return self.answer(sealed, Plan.of(self.enforcer.engine.reconcile(document, dry_run=True)).to_dict())

    def facts_request(self, sealed: Any) -> dict[str, Any]:
        try:
            self.verify_request(sealed)
        except trust.Refused as exc:
            self.refuse("facts request", str(exc))
            return self.answer(sealed, Refusal(refused=str(exc)).to_dict())
        return self.answer(sealed, facts.gather_facts(self.ctx, self.host))

    def report_request(self, sealed: Any) -> None:
        try:
            self.verify_request(sealed)
        except trust.Refused as exc:
            self.refuse("report request", str(exc))
            return
        self.report_soon.set()

    def answer(self, request: Any, answer: Any) -> dict[str, Any]:
        """Signed by this node for this very request: another consumer of its queue cannot answer for it."""
        return trust.seal({"kind": "reply", "node": self.host, "request": trust.digest(request),
                           "answer": answer}, self.node_key)

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
            self.notifications = Outbox(self._send_notification, name=f"notifications {self.host}")
            self._loop = threading.Thread(target=self._run_loop, name=f"agent {self.host}", daemon=True)
            self._talker = threading.Thread(target=self._talk, name=f"coordinator {self.host}", daemon=True)
            self._loop.start()

    def run(self) -> None:
        """``start()``, then wait in the calling thread until ``stop()`` (called from another thread)."""
        self.start()
        self.stopped.wait()

    def reload(self) -> None:
        """Read the configuration files again (SIGHUP), in the loop, between two reconciles."""
        self.queue_work("reload", None)

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
            server, self.server = self.server, None
        if not first:
            self.stopped.wait()
            return
        self.queue_work("stop", None)
        self.report_soon.set()  # wakes the talker
        if self._loop is not None and self._loop is not threading.current_thread():
            self._loop.join()
        steps = [server.stop, server.wait] if server is not None else []
        steps += [self.notifications.stop] if self.notifications is not None else []
        if not messaging.within(messaging.STOP_WAIT, *steps, *(t.cleanup for t in self._own_transports)):
            self.log.warning("stopped; the broker connections close by themselves once it is back")
        self.stopped.set()
        self.log.info("stopped")

    def _run_loop(self) -> None:
        bind_host(self.host)
        try:
            self.load_cached()
            sd_notify(f"READY=1\nSTATUS={self.enforcer.status_line()}")
            self._talker.start()
            self._loop_until_stopped()
        except Exception:  # the process hosting this agent hears of it: stopped, with the reason
            self.log.exception("the agent's loop failed")
            self.failed = True
            threading.Thread(target=self.stop, name=f"stop {self.host}", daemon=True).start()
        finally:
            self.enforcer.stop_watches()

    def _loop_until_stopped(self) -> None:
        next_resync = time.monotonic() + self._resync_delay()
        while not self.stopping.is_set():
            sd_notify("WATCHDOG=1")
            self.refusals.flush()
            now = time.monotonic()
            if now >= next_resync:
                self.enforcer.reconcile("periodic resync")
                next_resync = time.monotonic() + self._resync_delay()
            due = self.enforcer.due_at()
            if due is not None and now >= due:
                self.enforcer.run_due()
                continue
            wake = min(next_resync, due if due is not None else next_resync, now + 1.0)
            try:
                kind, item = self.work.get(timeout=max(0.005, wake - time.monotonic()))
            except queue.Empty:
                continue
            if kind == "document" and self.take(*item):
                self.report_soon.set()  # tell the coordinator at once
            elif kind == "reload":
                self._reload()

    def _talk(self) -> None:
        """Listen for the coordinator, heartbeat, and pull when told to or after a reconnect."""
        bind_host(self.host)
        while not self.stopping.is_set() and not self._listen():
            self.stopping.wait(self.conf.report_interval)
        while not self.stopping.is_set():
            self.report()
            self.report_soon.wait(self.conf.report_interval)
            self.report_soon.clear()

    def _listen(self) -> bool:
        """Start the RPC server; False when the broker cannot be reached yet."""
        try:
            server = messaging.agent_server(self._rpc_transport(), self.host, self)
            server.start()
        except Exception as exc:
            if not self.stopping.is_set():
                self.log.warning("cannot listen for the coordinator yet: %s", exc)
            return False
        with self._life:
            if not self.stopping.is_set():
                self.server = server
                return True
        messaging.within(messaging.STOP_WAIT, server.stop, server.wait)  # stop() came while it was starting
        return True

    def _rpc_transport(self) -> Any:
        if self._transport is None:
            self._transport = messaging.rpc_transport(self.conf)
            self._own_transports.append(self._transport)
        return self._transport

    def _resync_delay(self) -> float:
        return self.conf.resync_interval * random.uniform(0.9, 1.0)

    def _reload(self) -> None:
        try:
            self.conf.reload_config_files()
            self.log.info("configuration reloaded: report_interval %d, resync_interval %d",
                          self.conf.report_interval, self.conf.resync_interval)
        except Exception as exc:
            self.log.error("configuration not reloaded: %s", exc)


def box_key_paths(state_dir: Path) -> list[Path]:
    """This node's encryption keys, the current one first."""
    return [state_dir / "node.box", state_dir / "node.box.previous"]
