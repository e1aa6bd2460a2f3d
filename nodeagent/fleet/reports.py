"""Intake of what agents send: reports (heartbeat, status, facts, events, drift) and state fetches.

Every message is checked here before anything is stored: the node's signature (a first contact
enrols the key it presents), then its sequence number (a replay is refused), then its shape: it is
read as a ``wire.messages.Report`` (or ``Request``), or refused naming the field. Refusals are
recorded once per source and kind per window. A request that does not verify or is not fresh is
answered with a ``Rejection``, which is never signed: one signed answer per accepted request.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from sqlalchemy import select

from nodeagent.fleet import enrolment, reportbounds
from nodeagent.fleet.heartbeats import HeartbeatIntake, close_resolved_drift, open_problems, spend
from nodeagent.fleet.errors import NotFound
from nodeagent.fleet.inventory import DriftRecord, Event, Inventory, Node, NodeTrust
from nodeagent.fleet.notices import Notices
from nodeagent.process.metrics import CoordinatorMetrics
from nodeagent.wire import messages
from nodeagent.wire.protocol import CoordinatorChannel, NodeRequest, Refused, Rejection
from nodeagent.wire.refusals import RefusalLog

LOG = logging.getLogger(__name__)


class Reports:
    """What agents call: their reports are verified, made fresh, and stored; their fetches answered."""

    def __init__(self, inventory: Inventory, refusals: RefusalLog, metrics: CoordinatorMetrics, notices: Notices,
                 sealed_document: Callable[[str], dict[str, Any] | None], auto_accept: bool,
                 gate: enrolment.Gate | None = None, heartbeat_max_age: float | None = None,
                 push_grace: float = 0, health_refresh: float = 0):
        """``heartbeat_max_age``: a cast heartbeat older than this is dropped (the down time); ``push_grace``:
        how long a stored document may take to reach its node before a heartbeat behind it asks for it;
        ``health_refresh``: how old a node's stored health figures may grow before a plain heartbeat writes
        them again."""
        self.inventory = inventory
        self.refusals = refusals
        self.metrics = metrics
        self.notices = notices
        self.sealed_document = sealed_document
        self.auto_accept = auto_accept
        self.gate = gate or enrolment.Gate(max_pending=100, per_minute=30)  # the options' defaults
        self.heartbeat_max_age = heartbeat_max_age
        self.cast_heartbeats = False  # set while this coordinator's heartbeat listener runs
        self.heartbeats = HeartbeatIntake(inventory.engine, self._count_in_sync, push_grace, health_refresh)
        self.facts_changed: set[str] = set()  # nodes with roles whose facts changed: render again
        self._facts_lock = threading.Lock()  # RPC threads add, the serve loop takes

    def take_facts_changed(self) -> list[str]:
        """The nodes whose facts changed since the last call (their roles may render differently)."""
        with self._facts_lock:
            hosts, self.facts_changed = sorted(self.facts_changed), set()
        return hosts

    def report_state(self, sealed: Any) -> messages.ReportAnswer | Rejection:
        """A node's report, called: verified, fresh, read as a ``Report``, stored; the answer to sign and send
        back. A report that does not verify or is not fresh gets a ``Rejection`` (never signed)."""
        with self.metrics.report_seconds.time():
            return self._report_state(sealed)

    def take_heartbeats(self, batch: list[Any]) -> list[str]:
        """Heartbeats cast by agents, taken together; returns the nodes to ask for a full report: those whose
        heartbeat was not plain (it has no answer to carry: a node coming back, say) or who hold an older
        generation than they should. A refusal is recorded; its sender hears nothing (it was not asked)."""
        started = time.perf_counter()
        beats = self.heartbeats.take(batch, self.heartbeat_max_age, cast=True)
        ask = []
        for beat in beats:
            if beat.superseded:
                self.metrics.heartbeats_dropped.labels("superseded").inc()
            if beat.age is not None:
                self.metrics.heartbeats_dropped.labels("stale").inc()
                self.refuse(beat.host, "report.stale", f"a heartbeat sent {beat.age:.0f} s ago dropped (older than "
                            "the down time: no coordinator took it meanwhile, or the node's clock is off)")
                continue
            if beat.refused is not None:
                self._record_refusal(beat.sealed, "report.refused", beat.refused)
            elif beat.cut:
                self.refuse(beat.host, "report.truncated", f"report cut: {'; '.join(beat.cut)}")
            if beat.behind or (not beat.plain and beat.host is not None):
                ask.append(beat.host)
            elif beat.host is None:
                self.refuse(None, "report.refused", "malformed heartbeat, or a node name that is not a host name")
        self.metrics.heartbeats_cast.inc(len(batch))
        share = (time.perf_counter() - started) / max(len(batch), 1)
        for _ in batch:  # the histogram counts heartbeats, whichever way they came
            self.metrics.report_seconds.observe(share)
        return ask

    def _report_state(self, sealed: Any) -> messages.ReportAnswer | Rejection:
        host = CoordinatorChannel.sender(sealed)
        if host is None:
            self.refuse(None, "report.refused", "malformed report, or a node name that is not a host name")
            return Rejection("malformed report")
        beat = self.heartbeats.take([sealed])[0]
        if beat.refused is not None:
            self._record_refusal(sealed, "report.refused", beat.refused)
            return messages.ReportAnswer(status="refused", reason=str(beat.refused)) if beat.verified \
                else Rejection(str(beat.refused))
        intake = _Intake()
        if beat.answer is not None:
            answer, cut = beat.answer, beat.cut
        else:
            try:
                answer, cut = self._take_in_session(sealed, intake)
            except Refused as refused:  # a Malformed report too
                self._record_refusal(sealed, "report.refused", refused)
                return messages.ReportAnswer(status="refused", reason=str(refused)) if intake.verified \
                    else Rejection(str(refused))
        # Recorded once the transaction is over (SQLite: one writer at a time).
        if cut:
            self.refuse(host, "report.truncated", f"report cut: {'; '.join(cut)}")
        if answer.taken and self.cast_heartbeats and sealed["payload"].get("held") is not None:
            answer = replace(answer, cast=True)
        return answer

    def _take_in_session(self, sealed: Any, intake: _Intake) -> tuple[messages.ReportAnswer, list[str]]:
        """Any report (a first contact, a new key, events, facts, a node coming back), through the ORM."""
        refused = None
        with self.inventory.session() as session:
            try:
                request, node = self._verify(session, sealed)
                intake.verified = True  # its sequence spent: this request gets one signed answer, whatever it is
                report, cut = reportbounds.bound(messages.Report.from_dict(request.payload))
                answer = self._take_report(session, node, report)
            except Refused as exc:
                refused = exc  # raised once the session has kept the spent sequence
        if refused is not None:
            raise refused
        return answer, cut

    def _count_in_sync(self, host: str, status: messages.AgentStatus) -> None:
        counts = status.counts
        self.metrics.in_sync.labels(host).set(counts.get("in_sync", 0) + counts.get("changed", 0))

    def _record_refusal(self, sealed: Any, kind: str, refused: Refused) -> None:
        if isinstance(refused, enrolment.Limited):  # made-up nodes vary their names: one source for them all
            self.refuse("(enrolment limit)", "enrolment.limited", str(refused))
        else:
            self.refuse(CoordinatorChannel.sender(sealed), kind, str(refused))

    def refuse(self, host: Any, kind: str, reason: str) -> None:
        refuse(self.refusals, host, kind, reason)

    def _verify(self, session: Any, sealed: Any, enrol: bool = True) -> tuple[NodeRequest, Node]:
        """A node's request, signed by its accepted key (a first contact enrols the key it presents, an
        endorsed new key replaces it) and carrying a sequence above the last accepted (no replay); and its
        node, loaded once per request (the session keeps only weak references: a node dropped here would be
        read again, its JSON columns decoded twice)."""
        host = CoordinatorChannel.sender(sealed)
        if host is None:
            raise Refused("malformed request, or a node name that is not a host name")
        node = session.get(Node, host)
        if node is not None and node.enrolment == "revoked":
            raise Refused("revoked: run 'nodeagentctl node forget' to let it enrol again")
        accepted_key = node.public_key if node is not None else None
        if accepted_key is None and enrol and not enrolment.valid_host(host):
            raise Refused("invalid host name (RFC 1123, at most 253 characters)")
        request = CoordinatorChannel.read_request(sealed, accepted_key, enrol)
        if request.enrolled:
            if not self.auto_accept:
                self.gate.admit(session)
            self._enrol(session, node, host, request.key)
        elif request.rekeyed:
            node.public_key = request.key
            self.inventory.add_event(host, "node.rekeyed", f"new key {request.key}", session)
        known = session.get(NodeTrust, host)
        if known is None:
            known = NodeTrust(name=host, sequence=0)
            session.add(known)
            session.flush()
        spend(session, request, known.sequence, known.box_key)
        return request, node if node is not None else session.get(Node, host)

    def _enrol(self, session: Any, node: Node | None, host: str, key: str) -> None:
        """A first contact: the key it proved it holds is kept, pending (or auto-accepted)."""
        accepted = self.auto_accept
        if node is None:
            node = Node(name=host, roles=[], variables={}, facts={}, health={}, status={})
            session.add(node)
        node.public_key = key
        node.enrolment = "accepted" if accepted else "pending"
        self.inventory.add_event(host, "node.enrolled" if accepted else "node.pending",
                                 "auto-accepted" if accepted else f"run: nodeagentctl node accept {host}", session)
        session.flush()

    def _take_report(self, session: Any, node: Node, report: messages.Report) -> messages.ReportAnswer:
        """A verified, fresh report: heartbeat, status, facts, events."""
        host = node.name
        if node.enrolment != "accepted":
            return messages.ReportAnswer(status="pending")
        now = time.time()
        status = "new" if node.last_heartbeat is None else "alive" if node.alive else "revived"
        node.last_heartbeat = now
        node.alive = True
        node.health = report.health
        before, node.status = node.status or {}, report.status.to_dict()
        node.observed_generation = report.status.generation
        if report.facts:
            if node.roles and report.facts != node.facts:
                with self._facts_lock:
                    self.facts_changed.add(host)
            node.facts = report.facts
        new = self._store_events(session, host, report.events)
        drift = [event.drift for event in new if event.drift is not None]
        if report.events or open_problems(before) != open_problems(node.status):  # else nothing to close
            session.execute(close_resolved_drift(host, report.status))
        self._count_in_sync(host, report.status)
        if status != "alive":
            self.inventory.add_event(host, "node.up", status, session)
        desired = node.desired_generation
        # The outbox and the webhook sender queue these: nothing here waits on the network.
        if status == "revived":
            self.notices.notify("nodeagent.node.up", {"node": host})
        for event in drift:
            self.notices.alert({"type": f"nodeagent.drift.{event.state}", **event.to_dict()})
        for event in new:
            if event.type == "rolled_back":
                self._rolled_back(host, event, report.status.rolled_back)
        return messages.ReportAnswer(status=status, desired_generation=desired)

    def _store_events(self, session: Any, host: str, events: tuple[messages.Event, ...]) -> list[messages.Event]:
        """Keep each reported event once (agents resend until acknowledged); returns the new ones."""
        new = []
        for event in events:
            if session.scalar(select(Event.id).where(Event.uid == event.id)) is not None:
                continue
            new.append(event)
            session.add(Event(uid=event.id, node=host, type=event.type, detail=event.detail, at=event.at))
            if event.type == "apply.failed":
                self.metrics.apply_failures.labels(host).inc()
            if event.drift is not None:  # it names this node: the report was refused otherwise
                session.add(drift_record(event.id, event.drift))
                self.metrics.drift_events.labels(host, event.drift.driver, event.drift.state).inc()
        return new

    def _rolled_back(self, host: str, event: messages.Event, rollback: messages.Rollback | None) -> None:
        """A node undid a network change that cut it off: an alert, like a held node or a drift."""
        self.metrics.rollbacks.labels(host).inc()
        payload = {"node": host, "detail": event.detail, "at": event.at,
                   **({"rollback": rollback.to_dict()} if rollback is not None else {})}
        self.notices.notify("nodeagent.node.rolled_back", payload)
        self.notices.alert({"type": "nodeagent.node.rolled_back", "id": event.id, **payload})

    def fetch_state(self, sealed: Any) -> dict[str, Any] | Rejection | None:
        """An accepted node's latest document, sealed for it; None when there is none (or the node is not
        accepted yet); a ``Rejection`` when the request does not verify, is not fresh or does not read."""
        host = CoordinatorChannel.sender(sealed)
        if host is None:
            self.refuse(None, "fetch.refused", "malformed request, or a node name that is not a host name")
            return Rejection("malformed request")
        refused = None
        with self.inventory.session() as session:
            try:
                request, _ = self._verify(session, sealed, enrol=False)
                messages.Request.from_dict(request.payload)
                node = session.get(Node, request.host)
                accepted = node is not None and node.enrolment == "accepted"
            except Refused as exc:
                refused = str(exc)
        if refused is not None:
            self.refuse(host, "fetch.refused", refused)
            return Rejection(refused)
        if not accepted:
            return None
        try:
            return self.sealed_document(host)
        except NotFound as exc:
            LOG.warning("%s", exc)
            return None


@dataclass
class _Intake:
    """How far a report got: once verified, its sequence is spent and it gets a signed answer, even a refusal."""

    verified: bool = False


def refuse(refusals: RefusalLog, host: Any, kind: str, reason: str) -> None:
    """Recorded (and logged) once per source and kind per window; an invalid name is one source, and so is
    a made-up source in parentheses (every refusal at the enrolment limit)."""
    name = host if isinstance(host, str) and enrolment.valid_host(host) else None
    source = host if isinstance(host, str) and host.startswith("(") else name or "(invalid name)"
    if refusals.refuse(source, name, kind, reason):
        LOG.warning("%s from %s: %s", kind, source, reason)


def drift_record(uid: str, drift: messages.DriftEvent) -> DriftRecord:
    """The inventory's row of a drift event."""
    return DriftRecord(uid=uid, node=drift.node, resource=drift.resource, driver=drift.driver,
                       generation=drift.generation, state=drift.state,
                       changes=[change.to_dict() for change in drift.changes], error=drift.error,
                       seen_at=drift.seen_at, fixed_at=drift.fixed_at,
                       by=drift.by.to_dict() if drift.by is not None else None)


def drift_event(record: DriftRecord) -> messages.DriftEvent:
    """A stored drift read back as the message it came from (``nodeagentctl drift list`` shows it)."""
    return messages.DriftEvent(node=record.node, resource=record.resource, driver=record.driver,
                               generation=record.generation, state=record.state,
                               changes=tuple(messages.DriftChange.from_dict(c) for c in record.changes or ()),
                               seen_at=record.seen_at, fixed_at=record.fixed_at, error=record.error, id=record.uid,
                               by=messages.Writer.from_dict(record.by) if record.by else None)
