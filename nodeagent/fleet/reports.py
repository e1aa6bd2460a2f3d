"""Intake of what agents send: reports (heartbeat, status, facts, events, drift) and state fetches.

Every message is checked here before anything is stored: the node's signature (a first contact
enrols the key it presents), then its sequence number (a replay is refused), then its shape: it is
read as a ``wire.messages.Report`` (or ``Request``), or refused naming the field. Refusals are
recorded once per source and kind per window.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable

from sqlalchemy import select

from nodeagent.fleet import enrolment
from nodeagent.fleet.errors import NotFound
from nodeagent.fleet.inventory import DriftRecord, Event, Inventory, Node, NodeTrust
from nodeagent.fleet.notices import Notices
from nodeagent.kit.metrics import CoordinatorMetrics
from nodeagent.kit.model import NODE_PATTERN
from nodeagent.wire import box, messages, trust
from nodeagent.wire.refusals import RefusalLog

LOG = logging.getLogger(__name__)


class Reports:
    """What agents call: their reports are verified, made fresh, and stored; their fetches answered."""

    def __init__(self, inventory: Inventory, refusals: RefusalLog, metrics: CoordinatorMetrics, notices: Notices,
                 sealed_document: Callable[[str], dict[str, Any] | None], auto_accept: bool):
        self.inventory = inventory
        self.refusals = refusals
        self.metrics = metrics
        self.notices = notices
        self.sealed_document = sealed_document
        self.auto_accept = auto_accept
        self.facts_changed: set[str] = set()  # nodes with roles whose facts changed: render again
        self._facts_lock = threading.Lock()  # RPC threads add, the serve loop takes

    def take_facts_changed(self) -> list[str]:
        """The nodes whose facts changed since the last call (their roles may render differently)."""
        with self._facts_lock:
            hosts, self.facts_changed = sorted(self.facts_changed), set()
        return hosts

    def report_state(self, sealed: Any) -> messages.ReportAnswer:
        host = _sender(sealed)
        if host is None:
            self.refuse(None, "report.refused", "malformed report, or a node name that is not a host name")
            return messages.ReportAnswer(status="refused", reason="malformed report")
        refused = None
        with self.inventory.session() as session:
            node = session.get(Node, host)
            try:
                payload = self._verify_node(session, node, host, sealed)
                self._check_fresh(session, host, payload)
                report = messages.Report.from_dict(payload)  # signed by the node, but the node may be the attacker
            except trust.Refused as exc:  # a Malformed report too: refused, its sequence spent
                refused = str(exc)
            if refused is None:
                return self._take_report(session, host, report)
        # Recorded once the session is closed (SQLite: one writer at a time).
        self.refuse(host, "report.refused", refused)
        return messages.ReportAnswer(status="refused", reason=refused)

    def refuse(self, host: Any, kind: str, reason: str) -> None:
        """Recorded (and logged) once per source and kind per window; an invalid name is one source."""
        name = host if isinstance(host, str) and enrolment.valid_host(host) else None
        if self.refusals.refuse(name or "(invalid name)", name, kind, reason):
            LOG.warning("%s from %s: %s", kind, name or "(invalid name)", reason)

    def _check_fresh(self, session: Any, host: str, payload: dict[str, Any]) -> None:
        """Every message of a node carries a sequence above the last accepted: a replay is refused."""
        sequence = payload.get("seq")
        if not isinstance(sequence, int) or isinstance(sequence, bool):
            raise trust.Refused("no sequence number (replay protection)")
        known = session.get(NodeTrust, host)
        if known is None:
            known = NodeTrust(name=host, sequence=0)
            session.add(known)
        if sequence <= known.sequence:
            raise trust.Refused(f"replayed: sequence {sequence} is not above {known.sequence}")
        known.sequence = sequence
        presented = payload.get("box_key")
        if isinstance(presented, str) and presented != known.box_key:
            box.public_from_text(presented)  # a key, or refused
            known.box_key = presented

    def _take_report(self, session: Any, host: str, report: messages.Report) -> messages.ReportAnswer:
        """A verified, fresh report: heartbeat, status, facts, events."""
        node = session.get(Node, host)
        if node.enrolment != "accepted":
            return messages.ReportAnswer(status="pending")
        now = time.time()
        status = "new" if node.last_heartbeat is None else "alive" if node.alive else "revived"
        node.last_heartbeat = now
        node.alive = True
        node.health = report.health
        node.status = report.status.to_dict()
        node.observed_generation = report.status.generation
        if report.facts:
            if node.roles and report.facts != node.facts:
                with self._facts_lock:
                    self.facts_changed.add(host)
            node.facts = report.facts
        drift = self._store_events(session, host, report.events)
        self._close_resolved_drift(session, host, report.status)
        counts = report.status.counts
        self.metrics.in_sync.labels(host).set(counts.get("in_sync", 0) + counts.get("changed", 0))
        if status != "alive":
            self.inventory.add_event(host, "node.up", status, session)
        desired = node.desired_generation
        # The outbox and the webhook sender queue these: nothing here waits on the network.
        if status == "revived":
            self.notices.notify("nodeagent.node.up", {"node": host})
        for event in drift:
            self.notices.alert({"type": f"nodeagent.drift.{event.state}", **event.to_dict()})
        return messages.ReportAnswer(status=status, desired_generation=desired)

    def _store_events(self, session: Any, host: str, events: tuple[messages.Event, ...]) -> list[messages.DriftEvent]:
        """Keep each reported event once (agents resend until acknowledged); returns the new drift events."""
        drift = []
        for event in events:
            if session.scalar(select(Event.id).where(Event.uid == event.id)) is not None:
                continue
            session.add(Event(uid=event.id, node=host, type=event.type, detail=event.detail, at=event.at))
            if event.type == "apply.failed":
                self.metrics.apply_failures.labels(host).inc()
            if event.drift is not None:  # it names this node: the report was refused otherwise
                session.add(drift_record(event.id, event.drift))
                self.metrics.drift_events.labels(host, event.drift.driver, event.drift.state).inc()
                drift.append(event.drift)
        return drift

    @staticmethod
    def _close_resolved_drift(session: Any, host: str, status: messages.AgentStatus) -> None:
        """A drift left alone (monitor), contested or failed is closed once the node no longer reports it."""
        still = {*status.drifted, *status.failed, *status.contested}
        query = select(DriftRecord).where(DriftRecord.node == host, DriftRecord.fixed_at.is_(None),
                                          DriftRecord.closed_at.is_(None))
        for record in session.scalars(query):
            if record.resource not in still:
                record.closed_at = time.time()

    def fetch_state(self, sealed: dict[str, Any]) -> dict[str, Any] | None:
        host = _sender(sealed)
        if host is None:
            self.refuse(None, "fetch.refused", "malformed request, or a node name that is not a host name")
            return None
        refused = None
        with self.inventory.session() as session:
            node = session.get(Node, host)
            try:
                payload = self._verify_node(session, node, host, sealed, enrol=False)
                self._check_fresh(session, host, payload)
                messages.Request.from_dict(payload)
            except trust.Refused as exc:
                refused = str(exc)
            accepted = node is not None and node.enrolment == "accepted"
        if refused is not None:
            self.refuse(host, "fetch.refused", refused)
            return None
        if not accepted:
            return None
        try:
            return self.sealed_document(host)
        except NotFound as exc:
            LOG.warning("%s", exc)
            return None

    def _verify_node(self, session: Any, node: Node | None, host: str, sealed: dict[str, Any],
                     enrol: bool = True) -> dict[str, Any]:
        """Check a node's signature; a first contact enrols the key it presents (pending, or auto-accepted)."""
        presented = sealed.get("key")
        if node is not None and node.enrolment == "revoked":
            raise trust.Refused("revoked: run 'nodeagentctl node forget' to let it enrol again")
        if node is None or node.public_key is None:
            if not enrol or not isinstance(presented, str):
                raise trust.Refused("unknown node")
            if not enrolment.valid_host(host):
                raise trust.Refused("invalid host name (RFC 1123, at most 253 characters)")
            payload = trust.unseal(sealed, trust.public_from_text(presented))  # proves it holds the key
            accepted = self.auto_accept
            if node is None:
                node = Node(name=host, roles=[], variables={}, facts={}, health={}, status={})
                session.add(node)
            node.public_key = presented
            node.enrolment = "accepted" if accepted else "pending"
            self.inventory.add_event(host, "node.enrolled" if accepted else "node.pending",
                                     "auto-accepted" if accepted else f"run: nodeagentctl node accept {host}", session)
            session.flush()
            return payload
        if presented is not None and presented != node.public_key:
            return self._rekey(session, node, sealed)
        return trust.unseal(sealed, trust.public_from_text(node.public_key))

    def _rekey(self, session: Any, node: Node, sealed: dict[str, Any]) -> dict[str, Any]:
        """A node that made itself a new key proves it with the accepted key's endorsement (agent re-key)."""
        payload = trust.unseal(sealed, trust.public_from_text(sealed["key"]))
        if not trust.endorses(trust.public_from_text(node.public_key), payload.get("rekey"), sealed["key"], "rekey"):
            raise trust.Refused("signed with a key other than the node's accepted key")
        node.public_key = sealed["key"]
        self.inventory.add_event(node.name, "node.rekeyed", f"new key {sealed['key']}", session)
        return payload


def _sender(sealed: Any) -> str | None:
    """The node a message says it comes from; None when it is not even shaped like a signed message."""
    if not isinstance(sealed, dict) or not isinstance(sealed.get("payload"), dict):
        return None
    host = sealed["payload"].get("node")
    return host if isinstance(host, str) and re.fullmatch(NODE_PATTERN, host) else None


def drift_record(uid: str, drift: messages.DriftEvent) -> DriftRecord:
    """The inventory's row of a drift event."""
    return DriftRecord(uid=uid, node=drift.node, resource=drift.resource, driver=drift.driver,
                       generation=drift.generation, state=drift.state,
                       changes=[change.to_dict() for change in drift.changes], error=drift.error,
                       seen_at=drift.seen_at, fixed_at=drift.fixed_at)


def drift_event(record: DriftRecord) -> messages.DriftEvent:
    """A stored drift read back as the message it came from (``nodeagentctl drift list`` shows it)."""
    return messages.DriftEvent(node=record.node, resource=record.resource, driver=record.driver,
                               generation=record.generation, state=record.state,
                               changes=tuple(messages.DriftChange.from_dict(c) for c in record.changes or ()),
                               seen_at=record.seen_at, fixed_at=record.fixed_at, error=record.error, id=record.uid)
