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

from nodeagent import trust
from nodeagent.daemon import sd_notify
from nodeagent.fleetchecks import check_fleet
from nodeagent.inventory import DriftRecord, Event, Inventory, Node, Secret, SiteVariable, StateDocument
from nodeagent.metrics import CoordinatorMetrics
from nodeagent.model import NODE_PATTERN, parse_document
from nodeagent.registry import DriverRegistry

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
        self.inventory = Inventory(group.database_connection or f"sqlite:///{state_dir / 'coordinator.db'}")
        self.key = trust.load_or_create_key(group.signing_key or state_dir / "coordinator.key")
        self._registry: DriverRegistry | None = None
        self.down_time = group.agent_down_time or 3 * conf.report_interval
        self._transport = None
        self._notifier = None
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
        from nodeagent import messaging

        if self._transport is None:
            messaging.register_opts(self.conf)
            self._transport = messaging.rpc_transport(self.conf)
        return self._transport

    @property
    def agents(self):
        from nodeagent import messaging

        transport = self.transport
        return messaging.AgentClient(transport, timeout=self.conf.rpc_response_timeout)

    def notify(self, event_type: str, payload: dict[str, Any]) -> None:
        from nodeagent import messaging

        try:
            if self._notifier is None:
                messaging.register_opts(self.conf)
                self._notifier = messaging.notifier(self.conf, "nodeagent.coordinator")
            self._notifier.info({}, event_type, payload)
        except Exception:
            LOG.exception("could not send notification %s", event_type)

    # -- documents -------------------------------------------------------------------------------
    def seal(self, payload: dict[str, Any]) -> dict[str, Any]:
        return trust.seal({**payload, "issued_at": time.time()}, self.key)

    def set_state(self, host: str, raw: dict[str, Any], push: bool = True) -> int:
        """Store a new document for ``host`` at the next generation and push it; returns the generation."""
        if raw.get("node", host) != host:
            raise ValueError(f"the document is for node '{raw.get('node')}', not '{host}'")
        with self.inventory.session() as session:
            node = session.get(Node, host)
            if node is None:
                raise NotFound(f"no node '{host}' (it appears when its agent first reports)")
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
        return self.seal({"kind": "document", "document": body})

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
            if stored is None or stored.body.get("resources") != body["resources"]:
                generation += 1  # what the next push would be
            sealed = self.seal({"kind": "document", "document": {**body, "node": host, "generation": generation}})
        else:
            sealed = self.sealed_document(host)
        if sealed is None:
            raise NotFound(f"node '{host}' has no document")
        return self.agents.plan_state(host, sealed)

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
            return {"status": "refused", "reason": "malformed report"}
        with self.inventory.session() as session:
            node = session.get(Node, host)
            try:
                payload = self._verify_node(session, node, host, sealed)
            except trust.Refused as exc:
                self.inventory.add_event(host, "report.refused", str(exc), session)
                LOG.warning("report from %s refused: %s", host, exc)
                return {"status": "refused", "reason": str(exc)}
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
            return None
        with self.inventory.session() as session:
            node = session.get(Node, host)
            try:
                self._verify_node(session, node, host, sealed, enrol=False)
            except trust.Refused as exc:
                self.inventory.add_event(host, "fetch.refused", str(exc), session)
                return None
            if node.enrolment != "accepted":
                return None
        return self.sealed_document(host)

    def _verify_node(self, session: Any, node: Node | None, host: str, sealed: dict[str, Any],
                     enrol: bool = True) -> dict[str, Any]:
        """Check a node's signature; a first contact enrols the key it presents (pending, or auto-accepted)."""
        presented = sealed.get("key")
        if node is None or node.public_key is None:
            if not enrol or not isinstance(presented, str):
                raise trust.Refused("unknown node")
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
            raise trust.Refused("signed with a key other than the node's accepted key")
        return trust.unseal(sealed, trust.public_from_text(node.public_key))

    # -- roles, variables, secrets -------------------------------------------------------------
    @property
    def roles(self):
        from nodeagent.roles import Roles

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
        problems = check_fleet(rendered)
        if problems:
            self.inventory.add_event(None, "push.blocked", "; ".join(problems))
            raise FleetInconsistent(problems)
        pushed = []
        for host, body in rendered.items():
            stored = self.inventory.document(host)
            if stored is None or stored.body.get("resources") != body["resources"]:
                pushed.append((host, self.set_state(host, body, push=self._can_push(host))))
        return pushed

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
        from nodeagent import messaging

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        server = messaging.rpc_server(self.transport, messaging.Target(
            topic=messaging.COORDINATOR_TOPIC, server=self.conf.host, version=messaging.COORDINATOR_API_VERSION),
            [CoordinatorEndpoint(self)])
        server.start()
        from nodeagent import metrics
        from nodeagent.alerts import WebhookSender

        group = self.conf.coordinator
        self.alerts = WebhookSender(group.webhooks, group.webhook_timeout, group.webhook_retries, self._dead_letter)
        metrics.serve(self.metrics.registry, group.metrics_address)
        LOG.info("coordinator serving on %s (database %s)", messaging.COORDINATOR_TOPIC,
                 self.inventory.engine.url.render_as_string(hide_password=True))
        sd_notify("READY=1")
        try:
            while not stop.wait(1.0):
                self.check_down()
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
    """The RPC face of the coordinator: only these two methods are callable (explicit access policy)."""
    from nodeagent import messaging

    class Endpoint:
        target = messaging.Target(version=messaging.COORDINATOR_API_VERSION)

        @messaging.expose
        def report_state(self, context: dict, sealed: dict[str, Any]) -> dict[str, Any]:
            return coordinator.report_state(sealed)

        @messaging.expose
        def fetch_state(self, context: dict, sealed: dict[str, Any]) -> dict[str, Any] | None:
            return coordinator.fetch_state(sealed)

    return Endpoint()
