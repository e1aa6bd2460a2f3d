"""The agent's side of the conversation with its coordinator: heartbeats with status, health, new events and
changed facts; pulls of its document; every request signed and every answer checked by the node's channel.

The talker never applies anything: a pulled document goes to the agent's work queue (``hand_over``), so
the reconcile loop never waits on the broker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from typing import Any, Callable

from nodeagent.kit.context import Context
from nodeagent.process.daemon import HostLogger
from nodeagent.process.metrics import AgentMetrics
from nodeagent.node import facts
from nodeagent.node.drift import Spool
from nodeagent.node.enforcer import Enforcer
from nodeagent.wire import rpc as messaging
from nodeagent.wire.messages import AgentStatus, DriftEvent, Event, Malformed, Report, ReportAnswer, Request, new_id
from nodeagent.wire.protocol import NodeChannel, Refused

LOG = logging.getLogger(__name__)
FACTS_REFRESH = 30  # heartbeats between two gatherings of the facts when no interface changed


class Talker:
    """Heartbeat, pull and the event spool of one agent, over its channel and an RPC client to the coordinator."""

    def __init__(self, host: str, channel: NodeChannel, spool: Spool, enforcer: Enforcer, ctx: Context,
                 metrics: AgentMetrics, coordinator: Callable[[], messaging.CoordinatorAPI],
                 hand_over: Callable[[Any], None], refuse: Callable[[str, str], None],
                 stopping: threading.Event, facts_changed: threading.Event | None = None,
                 gather: Callable[[], dict[str, Any]] | None = None,
                 cast: Callable[[dict[str, Any]], None] | None = None):
        """``cast``: sends a sealed heartbeat without waiting for an answer (None: every heartbeat is called)."""
        self.host = host
        self.gather = gather or (lambda: facts.gather_facts(ctx, host))
        self.log = HostLogger(LOG, host)
        self.channel = channel
        self.spool = spool
        self.enforcer = enforcer
        self.ctx = ctx
        self.metrics = metrics
        self.coordinator = coordinator
        self.hand_over = hand_over
        self.refuse = refuse
        self.stopping = stopping
        self.report_soon = threading.Event()
        self.connected: bool | None = None  # None: not tried yet
        self.reply_refused = False
        # Facts are gathered when the node's interfaces changed (the watch hub sets facts_changed), and every
        # FACTS_REFRESH heartbeats for what no event announces (an upgraded Open vSwitch); sent until taken.
        self.facts_changed = facts_changed if facts_changed is not None else threading.Event()
        self.facts_changed.set()
        self._facts_sent: str | None = None
        self._facts_unsent: tuple[str, dict[str, Any]] | None = None  # (digest, facts) not yet taken
        self._heartbeats = 0
        # A heartbeat is cast, not called, while the coordinator has nothing to say: the last call was answered
        # alive and asked for casts, nothing else is to be sent, and it did not ask for a full report
        # (report_next).
        self.cast = cast
        self._cast_asked = False  # the last full report was answered: alive, cast the next ones
        self._cast_since_call = 0
        self._call_next = threading.Event()
        self._lock = threading.Lock()  # the spool: the loop appends, the talker acknowledges

    def record(self, kind: str, detail: str, drift: DriftEvent | None = None) -> None:
        """Spool an event for the coordinator (delivered in order, at least once; it keeps each once).
        A drift's event carries the drift's id, so the coordinator keeps the pair once."""
        event = Event(id=drift.id if drift else new_id(), type=kind, detail=detail, drift=drift)
        try:
            with self._lock:
                self.spool.append(event)
        except OSError as exc:
            self.log.error("event %s not spooled (%s): %s", kind, exc.strerror or exc, detail[:200])
            return
        self.metrics.spooled.set(len(self.spool))
        self.report_soon.set()

    def report(self, include_facts: bool = False) -> ReportAnswer | None:
        """Heartbeat: health, status, new events, and facts when they changed. None if unreachable."""
        self._heartbeats += 1
        if include_facts or self.facts_changed.is_set() or self._heartbeats % FACTS_REFRESH == 0:
            self.facts_changed.clear()
            node_facts = self.gather()
            digest = hashlib.sha256(json.dumps(node_facts, sort_keys=True).encode()).hexdigest()
            if include_facts or digest != self._facts_sent:
                self._facts_unsent = (digest, node_facts)
        with self._lock:
            spooled = self.spool.pending()
        document = self.enforcer.document
        # Processes show the daemon's name, not the unit's: neutron-l3-agent, not neutron-l3-agent.service.
        services = [r.spec["name"].removesuffix(".service") for r in document.resources
                    if r.driver == "service"] if document else []
        report = Report(node=self.host, seq=0, sent_at=time.time(),
                        status=AgentStatus.from_dict(self.enforcer.status()),
                        health=facts.health(str(self.channel.state_dir), services),
                        events=tuple(e for _, e in spooled),
                        facts=self._facts_unsent[1] if self._facts_unsent else None, held=self._held())
        if self._may_cast(report):
            self._send_cast(report)
            return None
        self._call_next.clear()
        self._cast_since_call = 0
        answer = self.ask("report_state", report)
        try:
            answer = None if answer is None else ReportAnswer.from_dict(answer)
        except Malformed as exc:
            self.refuse("answer to report_state", str(exc))
            return None
        if answer is None:
            return None
        if answer.status != "refused" and self.channel.rekeying:
            self.channel.key_taken()  # the coordinator took this node's new key
        if answer.taken:
            self._acknowledge([path for path, _ in spooled])
            if report.facts is not None:
                self._facts_sent, self._facts_unsent = self._facts_unsent[0], None
        was_connected, self.connected = self.connected, True
        self._cast_asked = answer.cast and answer.status in ("new", "alive", "revived")
        if answer.status == "pending":
            self.log.warning("waiting for the operator to accept this node: nodeagentctl node accept %s", self.host)
        elif answer.status == "refused":
            self.log.error("the coordinator refused this node's report: %s", answer.reason)
        elif not was_connected or answer.status in ("new", "revived") or \
                (answer.desired_generation or 0) > self._held():
            self.pull()
        return answer

    def report_next(self) -> None:
        """The coordinator has something to say: the next heartbeat is called (and comes now)."""
        self._call_next.set()
        self.report_soon.set()

    def _may_cast(self, report: Report) -> bool:
        """Cast when nothing but the heartbeat is to be said, and the coordinator had nothing to say either."""
        return self.cast is not None and self.connected is True and self._cast_asked and not report.events \
            and report.facts is None and not self.channel.rekeying and not self._call_next.is_set() \
            and self._cast_since_call < messaging.FULL_REPORT_EVERY - 1

    def _send_cast(self, report: Report) -> None:
        if self.stopping.is_set():
            return
        try:
            self.cast(self.channel.sign_request(report).to_dict())
        except Exception as exc:  # the next heartbeat is called: it says whether the coordinator is there
            if not self.stopping.is_set():
                self.log.warning("heartbeat not sent: %s", exc)
                if self.connected is not False:
                    self._lost()
            self.connected = False
            return
        self._cast_since_call += 1

    def _lost(self) -> None:
        """The first heartbeat lost after one that went through (a coordinator killed with the call in hand,
        say; another takes the next): the next comes at once, not after a whole interval, so the silence stays
        well under the down time. Once only: a coordinator really away is asked every interval, as before."""
        self.report_soon.set()

    def _held(self) -> int:
        """The newest generation this agent has: the one it enforces, or one it rolled back (not pulled again)."""
        document, rolled = self.enforcer.document, self.enforcer.rolled_back
        return max(self.enforcer.status()["generation"], document.generation if document else 0,
                   rolled.generation if rolled else 0)

    def _acknowledge(self, paths: list[Any]) -> None:
        with self._lock:
            self.spool.acknowledge(paths)
            remaining = len(self.spool)
        self.metrics.spooled.set(remaining)
        if remaining:
            self.report_soon.set()

    def pull(self) -> None:
        """Ask for this node's document; the loop takes it (checked there like a push)."""
        sealed = self.ask("fetch_state", Request(node=self.host, seq=0, sent_at=time.time()))
        if sealed:
            self.hand_over(sealed)

    def ask(self, method: str, request: Request) -> Any:
        """Call the coordinator with a signed, sequenced request; its answer if signed for this very request,
        else None (as if unreachable: nothing is acknowledged on an answer that cannot be trusted)."""
        if self.stopping.is_set():  # stopped while a heartbeat was in flight: nothing more to say
            return None
        envelope = self.channel.sign_request(request)
        try:
            reply = getattr(self.coordinator(), method)(envelope.to_dict())
        except Exception as exc:
            if self.connected is not False and not self.stopping.is_set():
                self.log.warning("coordinator unreachable (working from the cached document): %s", exc)
                self._lost()
            self.connected = False
            return None
        try:
            answer = self.channel.read_reply(reply, envelope)
        except Refused as exc:
            if not self.reply_refused:  # recorded once per run of bad answers
                self.refuse(f"answer to {method}", str(exc))
            self.reply_refused = True
            return None
        self.reply_refused = False
        return answer

    def run(self, interval: Callable[[], float]) -> None:
        """Heartbeat every ``interval()`` seconds, or at once when ``report_soon`` is set, until stopping."""
        while not self.stopping.is_set():
            self.report()
            self.report_soon.wait(interval())
            self.report_soon.clear()
