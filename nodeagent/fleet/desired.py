"""Desired state: render each node's roles, check the fleet, store the document, sign, encrypt and push it.

A node's document is sealed for that node alone (signed by the coordinator, encrypted to the
node's key) and pushed over the bus; an agent also fetches it when it (re)connects.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from oslo_config import cfg

from nodeagent.fleet.errors import FleetInconsistent, NotFound
from nodeagent.fleet.fleetchecks import check_fleet, option_findings
from nodeagent.fleet.inventory import Inventory, Node, NodeTrust, StateDocument
from nodeagent.fleet.signer import Signer
from nodeagent.kit.model import parse_document
from nodeagent.kit.registry import DriverRegistry
from nodeagent.wire import box, trust

LOG = logging.getLogger(__name__)


class DesiredState:
    """Each node's desired document: rendered from its roles (or set by hand), checked, stored, pushed."""

    def __init__(self, conf: cfg.ConfigOpts, inventory: Inventory, signer: Signer, agents: Callable[[], Any],
                 refuse: Callable[[Any, str, str], None]):
        self.conf = conf
        self.inventory = inventory
        self.signer = signer
        self._agents = agents  # the RPC client to the agents, made on first use (it needs the broker)
        self.refuse = refuse
        self._registry: DriverRegistry | None = None

    @property
    def registry(self) -> DriverRegistry:
        """Made on first use: the drivers take most of a second to import."""
        if self._registry is None:
            self._registry = DriverRegistry.from_entry_points()
        return self._registry

    @property
    def roles(self):
        from nodeagent.fleet.roles import Roles

        return Roles(self.conf.coordinator.roles_dir)

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
        return self.signer.seal({"kind": "document", "node": host, "generation": body["generation"],
                                 "encrypted": sealed_body})

    def push(self, host: str) -> None:
        sealed = self.sealed_document(host)
        if sealed is None:
            raise NotFound(f"node '{host}' has no document")
        self._agents().apply_state(host, sealed)

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
        return self.node_answer(host, sealed, self._agents().plan_state(host, sealed))

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

    def render(self, host: str) -> dict[str, Any]:
        node = self.inventory.node(host)
        if node is None:
            raise NotFound(f"no node '{host}'")
        return self.roles.render(host, list(node.roles or []), self.inventory.variables(host),
                                 self.inventory.secrets(), node.facts)

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

        return {host: str(doc.get("openstack_release") or self.inventory.variables(host).get("openstack_release")
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

    def render_for_new_facts(self, hosts: list[str]) -> None:
        """A node's interfaces or addresses changed: its roles may render differently (local_ip)."""
        if not hosts:
            return
        try:
            for host, generation in self.converge_roles():
                LOG.info("facts of %s changed: %s pushed at generation %d", ", ".join(hosts), host, generation)
        except Exception as exc:  # recorded; the operator sees it in events and fixes the inventory
            LOG.error("facts of %s changed, but the fleet cannot be rendered: %s", ", ".join(hosts), exc)
            self.inventory.add_event(hosts[0], "push.blocked", str(exc))
