"""The coordinator: keeps the inventory, signs and pushes documents, hears reports, notices nodes down.

``nodeagentctl serve`` runs the RPC server and the down check; the other
``nodeagentctl`` commands use the same class on the same database and key, on the
coordinator's host (as salt-key works on the master's files).
"""

from __future__ import annotations

import logging
import math
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

from oslo_config import cfg
from sqlalchemy import select

from nodeagent.wire import box, trust

from nodeagent.fleet import enrolment
from nodeagent.kit.daemon import sd_notify
from nodeagent.fleet.fleetchecks import check_fleet, option_findings
from nodeagent.fleet.inventory import DriftRecord, Event, Inventory, Node, NodeTrust, Secret, SiteVariable, StateDocument
from nodeagent.kit.metrics import CoordinatorMetrics
from nodeagent.kit.model import NODE_PATTERN, parse_document
from nodeagent.wire.refusals import RefusalLog
from nodeagent.kit.registry import DriverRegistry

# oslo.messaging and the drivers take most of a second to import: read-only
# commands (node list, events) do without them, so they are imported on first use.

LOG = logging.getLogger(__name__)


class NotFound(Exception):
    """No such node (or no document for it)."""


class FleetInconsistent(Exception):
    """The rendered documents disagree between nodes; nothing was pushed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("the fleet's settings disagree, nothing was pushed:\n  " + "\n  ".join(problems))


class Coordinator:
    """The fleet's control plane over one inventory database and one signing key."""

    def __init__(self, conf: cfg.ConfigOpts):
        self.conf = conf
        group = conf.coordinator
        state_dir = Path(group.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.vault = box.Vault(group.secrets_key or state_dir / "secrets.key")
        self.inventory = Inventory(group.database_connection or f"sqlite:///{state_dir / 'coordinator.db'}",
                                   self.vault)
        self.key_path = Path(group.signing_key or state_dir / "coordinator.key")
        self.key = trust.load_or_create_key(self.key_path)
        # Refusals (forged, replayed, unknown): one event per source per window, with a count.
        self.refusals = RefusalLog(self.inventory.add_event, group.refusal_window)
        self._registry: DriverRegistry | None = None
        self.down_time = group.agent_down_time or 3 * conf.report_interval
        self._transport = None
        self._notifier = None
        self._outbox: Any = None
        self.metrics = CoordinatorMetrics()
        self.facts_changed: set[str] = set()  # nodes with roles whose facts changed: render again
        self._facts_lock = threading.Lock()  # RPC threads add, the serve loop takes
        self.alerts: Any = None  # a WebhookSender while serving

    # -- made on first use, so that read-only commands need neither broker nor drivers ---------
    @property
    def registry(self) -> DriverRegistry:
        if self._registry is None:
            self._registry = DriverRegistry.from_entry_points()
        return self._registry

    @property
    def transport(self):
        from nodeagent.wire import rpc as messaging

        if self._transport is None:
            messaging.register_opts(self.conf)
            self._transport = messaging.rpc_transport(self.conf)
        return self._transport

    @property
    def agents(self):
        from nodeagent.wire import rpc as messaging

        transport = self.transport
        return messaging.AgentClient(transport, timeout=self.conf.rpc_response_timeout)

    def notify(self, event_type: str, payload: dict[str, Any]) -> None:
        """Queued for a sender thread: a broker outage must not hold up the down check or RPC threads."""
        from nodeagent.wire.outbox import Outbox

        if self._outbox is None:
            self._outbox = Outbox(self._send_notification, name="notifications")
        self._outbox.put(event_type, payload)

    def _send_notification(self, event_type: str, payload: dict[str, Any]) -> None:
        from nodeagent.wire import rpc as messaging

        if self._notifier is None:
            messaging.register_opts(self.conf)
            self._notifier = messaging.notifier(self.conf, "nodeagent.coordinator", retry=1)
        self._notifier.info({}, event_type, payload)

    # -- documents -------------------------------------------------------------------------------
    def seal(self, payload: dict[str, Any]) -> dict[str, Any]:
        return trust.endorsed(trust.seal({**payload, "issued_at": time.time()}, self.key), self.key_path)

    def signed_reply(self, request: Any, answer: Any) -> dict[str, Any]:
        """An answer an agent can trust: signed, for its node, echoing the sequence of its request."""
        payload = request.get("payload") if isinstance(request, dict) else None
        payload = payload if isinstance(payload, dict) else {}
        return self.seal({"kind": "reply", "node": payload.get("node"), "seq": payload.get("seq"),
                          "answer": answer})

    def set_state(self, host: str, raw: dict[str, Any], push: bool = True) -> int:
        """Store a new document for ``host`` at the next generation and push it; returns the generation."""
        if raw.get("node", host) != host:
            raise ValueError(f"the document is for node '{raw.get('node')}', not '{host}'")
        self._block_on_option_errors({host: raw})
        with self.inventory.session() as session:
            node = session.get(Node, host)
            if node is None:
                raise NotFound(f"no node '{host}' (it appears when its agent first reports)")
            if node.enrolment == "revoked":
                raise ValueError(f"node '{host}' is revoked: it gets nothing ('node forget {host}' first)")
            generation = max(node.desired_generation, node.observed_generation) + 1
            document = parse_document({**raw, "node": host, "generation": generation}, self.registry)
            session.add(StateDocument(node=host, generation=generation, body=document.to_dict(),
                                      created_at=time.time()))
            node.desired_generation = generation
            self.inventory.add_event(host, "state.set", f"generation {generation}", session)
        if push:
            self.push(host)
        return generation

    def sealed_document(self, host: str) -> dict[str, Any] | None:
        stored = self.inventory.document(host)
        if stored is None:
            return None
        body = {**stored.body, "node": host, "generation": stored.generation}
        return self.seal_document(host, body)

    def seal_document(self, host: str, body: dict[str, Any]) -> dict[str, Any]:
        """Signed, and encrypted for the node's own key: no other node and no listener on the bus reads it."""
        with self.inventory.session() as session:
            known = session.get(NodeTrust, host)
            box_key = known.box_key if known is not None else None
        if not box_key:
            raise NotFound(f"node '{host}' has presented no encryption key yet (an agent older than this "
                           "coordinator?): nothing is sent to it in clear")
        aad = f"{host}:{body['generation']}".encode()
        sealed_body = box.encrypt_for(box.public_from_text(box_key), body, aad)
        return self.seal({"kind": "document", "node": host, "generation": body["generation"],
                          "encrypted": sealed_body})

    def push(self, host: str) -> None:
        sealed = self.sealed_document(host)
        if sealed is None:
            raise NotFound(f"node '{host}' has no document")
        self.agents.apply_state(host, sealed)

    def plan(self, host: str) -> dict[str, Any]:
        """The agent's diff against what its roles render now (or its stored document without roles)."""
        node = self.inventory.node(host)
        stored = self.inventory.document(host)
        if node is not None and node.roles:
            body = self.render(host)
            generation = node.desired_generation
            if stored is None or (stored.body.get("mode", "enforce"), stored.body.get("resources")) != (
                    body["mode"], body["resources"]):
                generation += 1  # what the next push would be
            sealed = self.seal_document(host, {**body, "node": host, "generation": generation})
        else:
            sealed = self.sealed_document(host)
        if sealed is None:
            raise NotFound(f"node '{host}' has no document")
        return self.node_answer(host, sealed, self.agents.plan_state(host, sealed))

    def node_answer(self, host: str, request: Any, sealed: Any) -> Any:
        """An agent's answer, if signed by the node's accepted key for this very request."""
        node = self.inventory.node(host)
        if node is None or not node.public_key:
            raise trust.Refused(f"the answer of '{host}': not an accepted node")
        try:
            payload = trust.unseal(sealed, trust.public_from_text(node.public_key))
            if payload.get("kind") != "reply" or payload.get("node") != host or \
                    payload.get("request") != trust.digest(request):
                raise trust.Refused("an answer to another request")
        except trust.Refused as exc:
            self.refuse(host, "answer.refused", str(exc))
            raise trust.Refused(f"the answer of '{host}' is refused: {exc}") from None
        return payload.get("answer")

    def accept(self, host: str) -> None:
        with self.inventory.session() as session:
            node = session.get(Node, host)
            if node is None:
                raise NotFound(f"no node '{host}' has asked to enrol")
            node.enrolment = "accepted"
            self.inventory.add_event(host, "node.accepted", f"key {node.public_key}", session)

    # -- what agents call ------------------------------------------------------------------------
    def report_state(self, sealed: dict[str, Any]) -> dict[str, Any]:
        host = _sender(sealed)
        if host is None:
            self.refuse(None, "report.refused", "malformed report, or a node name that is not a host name")
            return {"status": "refused", "reason": "malformed report"}
        refused = None
        with self.inventory.session() as session:
            node = session.get(Node, host)
            try:
                payload = self._verify_node(session, node, host, sealed)
                self._check_fresh(session, host, payload)
            except trust.Refused as exc:
                refused = str(exc)
            if refused is None:
                return self._take_report(session, host, payload)
        # Recorded once the session is closed (SQLite: one writer at a time).
        self.refuse(host, "report.refused", refused)
        return {"status": "refused", "reason": refused}

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

    def _take_report(self, session: Any, host: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A verified, fresh report: heartbeat, status, facts, events."""
        node = session.get(Node, host)
        if node.enrolment != "accepted":
            return {"status": "pending"}
        now = time.time()
        status = "new" if node.last_heartbeat is None else "alive" if node.alive else "revived"
        node.last_heartbeat = now
        node.alive = True
        payload = _clean_report(payload)  # signed by the node, but the node may be the attacker
        node.health = payload["health"]
        node.status = payload["status"]
        node.observed_generation = payload["status"]["generation"]
        if payload["facts"]:
            if node.roles and payload["facts"] != node.facts:
                with self._facts_lock:
                    self.facts_changed.add(host)
            node.facts = payload["facts"]
        alerts = self._store_events(session, host, payload["events"])
        self._close_resolved_drift(session, host, node.status)
        counts = node.status.get("counts", {})
        self.metrics.in_sync.labels(host).set(counts.get("in_sync", 0) + counts.get("changed", 0))
        if status != "alive":
            self.inventory.add_event(host, "node.up", status, session)
        desired = node.desired_generation
        # The outbox and the webhook sender queue these: nothing here waits on the network.
        if status == "revived":
            self.notify("nodeagent.node.up", {"node": host})
        for alert in alerts:
            self.alert(alert)
        return {"status": status, "desired_generation": desired}

    def _store_events(self, session: Any, host: str, reported: list[Any]) -> list[dict[str, Any]]:
        """Keep each reported event once (agents resend until acknowledged); returns the new drift alerts."""
        alerts = []
        for item in reported if isinstance(reported, list) else []:
            if not isinstance(item, dict):
                continue
            uid = str(item.get("id") or "")[:32] or None
            if uid and session.scalar(select(Event.id).where(Event.uid == uid)) is not None:
                continue
            kind = str(item.get("type", "agent"))[:64]
            session.add(Event(uid=uid, node=host, type=kind, detail=str(item.get("detail", "")),
                              at=_number(item.get("at")) or time.time()))
            if kind == "apply.failed":
                self.metrics.apply_failures.labels(host).inc()
            drift = item.get("drift")
            if isinstance(drift, dict) and uid:
                changes = drift.get("changes")
                session.add(DriftRecord(
                    uid=uid, node=host, resource=str(drift.get("resource")), driver=str(drift.get("driver")),
                    generation=int(_number(drift.get("generation"))), state=str(drift.get("state")),
                    changes=changes if isinstance(changes, list) else [],
                    error=None if drift.get("error") is None else str(drift["error"]),
                    seen_at=_number(drift.get("seen_at")) or time.time(),
                    fixed_at=_number(drift.get("fixed_at")) or None))
                self.metrics.drift_events.labels(host, str(drift.get("driver")), str(drift.get("state"))).inc()
                alerts.append({"type": f"nodeagent.drift.{drift.get('state')}", "node": host, **drift})
        return alerts

    @staticmethod
    def _close_resolved_drift(session: Any, host: str, status: dict[str, Any]) -> None:
        """A drift left alone (monitor), contested or failed is closed once the node no longer reports it."""
        still = set(status.get("drifted", [])) | set(status.get("failed", [])) | set(status.get("contested", []))
        query = select(DriftRecord).where(DriftRecord.node == host, DriftRecord.fixed_at.is_(None),
                                          DriftRecord.closed_at.is_(None))
        for record in session.scalars(query):
            if record.resource not in still:
                record.closed_at = time.time()

    def alert(self, alert: dict[str, Any]) -> None:
        if self.alerts is not None:
            self.alerts.send(alert)

    def _dead_letter(self, url: str, alert: dict[str, Any], error: str) -> None:
        self.metrics.webhook_failures.labels(url).inc()
        self.inventory.add_event(alert.get("node"), "webhook.dead_letter",
                                 f"{url} did not take {alert.get('type')} {alert.get('id', '')}: {error}")

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
            accepted = self.conf.coordinator.auto_accept
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

    # -- roles, variables, secrets -------------------------------------------------------------
    @property
    def roles(self):
        from nodeagent.fleet.roles import Roles

        return Roles(self.conf.coordinator.roles_dir)

    def assign(self, host: str, roles: list[str], remove: bool = False) -> list[tuple[str, int]]:
        for role in roles:
            self.roles.source(role)  # an unknown role is an error naming the known ones
        node = self.inventory.node(host)
        if node is None:
            raise NotFound(f"no node '{host}' (it appears when its agent first reports)")
        before = list(node.roles or [])
        after = [r for r in before if r not in roles] if remove else before + [r for r in roles if r not in before]
        return self._change(lambda session: self._set_roles(session, host, after),
                            lambda session: self._set_roles(session, host, before))

    def _set_roles(self, session: Any, host: str, roles: list[str]) -> None:
        session.get(Node, host).roles = roles
        self.inventory.add_event(host, "roles.set", ", ".join(roles) or "(none)", session)

    def set_variable(self, key: str, value: str, host: str | None = None) -> list[tuple[str, int]]:
        if host is not None and self.inventory.node(host) is None:
            raise NotFound(f"no node '{host}'")
        # What was set at this level before (None: nothing), to put back if the push is refused.
        previous = (self.inventory.node(host).variables or {}).get(key) if host else self.variables().get(key)

        def put(session: Any, new: str | None) -> None:
            if host is None:
                if new is None:
                    session.query(SiteVariable).filter(SiteVariable.key == key).delete()
                else:
                    session.merge(SiteVariable(key=key, value=new))
                return
            node = session.get(Node, host)
            values = dict(node.variables or {})
            if new is None:
                values.pop(key, None)
            else:
                values[key] = new
            node.variables = values
        return self._change(lambda session: put(session, value),
                            lambda session: put(session, previous))

    def _change(self, do: Any, undo: Any) -> list[tuple[str, int]]:
        """Make an inventory change and push its consequences; undo it when they cannot be pushed."""
        with self.inventory.session() as session:
            do(session)
        try:
            return self.converge_roles()
        except Exception:
            with self.inventory.session() as session:
                undo(session)
            raise

    def variables(self, host: str | None = None) -> dict[str, str]:
        with self.inventory.session() as session:
            values = {v.key: v.value for v in session.query(SiteVariable)}
            node = session.get(Node, host) if host else None
            return {**values, **((node.variables or {}) if node else {})}

    def set_secret(self, key: str, value: str) -> list[tuple[str, int]]:
        if not value:
            raise ValueError(f"secret '{key}' must not be empty")
        before = self.secrets().get(key)

        def put(session: Any, new: str | None) -> None:
            if new is None:
                session.query(Secret).filter(Secret.key == key).delete()
            else:
                session.merge(Secret(key=key, value=new, set_at=time.time()))
        result = self._change(lambda session: put(session, value), lambda session: put(session, before))
        self.inventory.add_event(None, "secret.set", key)
        return result

    def secrets(self) -> dict[str, str]:
        with self.inventory.session() as session:
            return {s.key: s.value for s in session.query(Secret)}

    def render(self, host: str) -> dict[str, Any]:
        node = self.inventory.node(host)
        if node is None:
            raise NotFound(f"no node '{host}'")
        return self.roles.render(host, list(node.roles or []), self.variables(host), self.secrets(), node.facts)

    def converge_roles(self) -> list[tuple[str, int]]:
        """Render every node with roles, check the fleet, push what changed; all or nothing."""
        rendered = {node.name: self.render(node.name) for node in self.inventory.nodes() if node.roles}
        problems = check_fleet(rendered, self.releases(rendered))
        if problems:
            self.inventory.add_event(None, "push.blocked", "; ".join(problems))
            raise FleetInconsistent(problems)
        pushed = []
        for host, body in rendered.items():
            stored = self.inventory.document(host)
            if stored is None or (stored.body.get("mode", "enforce"), stored.body.get("resources")) != (
                    body["mode"], body["resources"]):
                pushed.append((host, self.set_state(host, body, push=self._can_push(host))))
        return pushed

    def releases(self, documents: dict[str, dict[str, Any]]) -> dict[str, str]:
        """Each node's target OpenStack release: its document's, else its openstack_release variable."""
        from nodeagent.fleet.roles import DEFAULTS

        return {host: str(doc.get("openstack_release") or self.variables(host).get("openstack_release")
                          or DEFAULTS["openstack_release"]) for host, doc in documents.items()}

    def _block_on_option_errors(self, documents: dict[str, dict[str, Any]]) -> None:
        problems = [f.describe() for f in option_findings(documents, self.releases(documents)) if f.is_error]
        if problems:
            self.inventory.add_event(next(iter(documents)) if len(documents) == 1 else None, "push.blocked",
                                     "; ".join(problems))
            raise FleetInconsistent(problems)

    def lint(self, host: str | None = None, role: str | None = None, release: str | None = None) -> list[Any]:
        """Option findings of what each node's roles render now (``nodeagentctl lint``)."""
        nodes = [n for n in self.inventory.nodes() if n.roles and (host is None or n.name == host)
                 and (role is None or role in n.roles)]
        if host is not None and not nodes:
            raise NotFound(f"no node '{host}' with roles")
        rendered = {node.name: self.render(node.name) for node in nodes}
        releases = {h: release for h in rendered} if release else self.releases(rendered)
        return option_findings(rendered, releases)

    def _can_push(self, host: str) -> bool:
        node = self.inventory.node(host)
        return node is not None and node.enrolment == "accepted"

    # -- liveness --------------------------------------------------------------------------------
    def check_down(self) -> list[str]:
        """Mark nodes without a heartbeat for agent_down_time as down; returns them."""
        limit = time.time() - self.down_time
        gone = []
        with self.inventory.session() as session:
            for node in session.query(Node).filter(Node.alive.is_(True), Node.last_heartbeat < limit):
                node.alive = False
                gone.append(node.name)
                self.inventory.add_event(node.name, "node.down",
                                         f"no heartbeat for {time.time() - node.last_heartbeat:.0f} s", session)
        for name in gone:
            LOG.warning("node %s is down", name)
            self.notify("nodeagent.node.down", {"node": name})
            self.alert({"type": "nodeagent.node.down", "node": name, "at": time.time()})
        return gone

    def _render_for_new_facts(self) -> None:
        """A node's interfaces or addresses changed: its roles may render differently (local_ip)."""
        with self._facts_lock:
            hosts, self.facts_changed = sorted(self.facts_changed), set()
        if not hosts:
            return
        try:
            for host, generation in self.converge_roles():
                LOG.info("facts of %s changed: %s pushed at generation %d", ", ".join(hosts), host, generation)
        except Exception as exc:  # recorded; the operator sees it in events and fixes the inventory
            LOG.error("facts of %s changed, but the fleet cannot be rendered: %s", ", ".join(hosts), exc)
            self.inventory.add_event(hosts[0], "push.blocked", str(exc))

    def update_gauges(self) -> None:
        nodes = self.inventory.nodes()
        now = time.time()
        states = {"up": 0, "down": 0, "pending": 0}
        for node in nodes:
            states["pending" if node.enrolment != "accepted" else "up" if node.alive else "down"] += 1
            if node.last_heartbeat:
                self.metrics.heartbeat_age.labels(node.name).set(now - node.last_heartbeat)
        for state, number in states.items():
            self.metrics.nodes.labels(state).set(number)

    def serve(self) -> None:
        """Run until SIGTERM or SIGINT: answer agents, notice nodes down."""
        from nodeagent.wire import rpc as messaging

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        topic = messaging.topic(self.conf, messaging.COORDINATOR_TOPIC)
        server = messaging.rpc_server(self.transport, messaging.Target(
            topic=topic, server=self.conf.host, version=messaging.COORDINATOR_API_VERSION),
            [CoordinatorEndpoint(self)])
        server.start()
        from nodeagent.kit import metrics
        from nodeagent.fleet.alerts import WebhookSender

        group = self.conf.coordinator
        self.alerts = WebhookSender(group.webhooks, group.webhook_timeout, group.webhook_retries, self._dead_letter)
        metrics.serve(self.metrics.registry, group.metrics_address)
        LOG.info("coordinator serving on %s (database %s)", topic,
                 self.inventory.engine.url.render_as_string(hide_password=True))
        sd_notify("READY=1")
        from nodeagent.fleet.neutroncheck import Verifier

        neutron = Verifier(self)
        try:
            while not stop.wait(1.0):
                self.refusals.flush()
                self.check_down()
                neutron.tick(time.monotonic())
                self._render_for_new_facts()
                self.update_gauges()
                sd_notify("WATCHDOG=1")
        finally:
            server.stop()
            server.wait()
            self.alerts.stop()


def _sender(sealed: Any) -> str | None:
    """The node a message says it comes from; None when it is not even shaped like a signed message."""
    if not isinstance(sealed, dict) or not isinstance(sealed.get("payload"), dict):
        return None
    host = sealed["payload"].get("node")
    return host if isinstance(host, str) and re.fullmatch(NODE_PATTERN, host) else None


def _number(value: Any) -> float:
    """A finite number from a report, 0 for anything else (a string, NaN, a list, 1e999)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0.0
    return float(min(max(value, -2**62), 2**62))


def _clean_report(payload: dict[str, Any]) -> dict[str, Any]:
    """A report's fields in the shapes the inventory stores, whatever the agent sent."""
    status = payload.get("status") if isinstance(payload.get("status"), dict) else {}
    counts = status.get("counts") if isinstance(status.get("counts"), dict) else {}
    status = {**status, "generation": int(_number(status.get("generation"))),
              "counts": {str(k): int(_number(v)) for k, v in counts.items()}}
    for name in ("drifted", "failed", "contested"):
        items = status.get(name)
        status[name] = [str(i) for i in items if isinstance(i, str)] if isinstance(items, list) else []
    return {"status": status,
            "health": payload.get("health") if isinstance(payload.get("health"), dict) else {},
            "facts": payload.get("facts") if isinstance(payload.get("facts"), dict) else None,
            "events": payload.get("events") if isinstance(payload.get("events"), list) else []}


def CoordinatorEndpoint(coordinator: Coordinator) -> Any:  # noqa: N802 - builds the endpoint class lazily
    """The RPC face of the coordinator: only these two methods are callable (explicit access policy);
    every answer is signed and names the request it answers."""
    from nodeagent.wire import rpc as messaging

    class Endpoint:
        target = messaging.Target(version=messaging.COORDINATOR_API_VERSION)

        @messaging.expose
        def report_state(self, context: dict, sealed: dict[str, Any]) -> dict[str, Any]:
            return coordinator.signed_reply(sealed, coordinator.report_state(sealed))

        @messaging.expose
        def fetch_state(self, context: dict, sealed: dict[str, Any]) -> dict[str, Any] | None:
            return coordinator.signed_reply(sealed, coordinator.fetch_state(sealed))

    return Endpoint()
