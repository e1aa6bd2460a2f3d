"""Delivery of documents to agents: sealed for one node (signed, encrypted to its key), pushed, planned.

What is stored in the inventory is the truth; a push is only a shortcut. An agent that missed a
push fetches its document when its heartbeat's answer names a newer generation, or when it
(re)connects (``Reports.fetch_state``).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from nodeagent.fleet.errors import NotFound
from nodeagent.fleet.inventory import Inventory, NodeTrust
from nodeagent.fleet.signer import Signer
from nodeagent.wire import box, trust

_CREDENTIALS = re.compile(r"(//)[^/@\s]*@")  # user:password@ in a broker URL, should an error show one


class Delivery:
    """Seals a node's stored (or rendered) document for that node alone and sends it over the bus."""

    def __init__(self, inventory: Inventory, signer: Signer, agents: Callable[[], Any],
                 refuse: Callable[[Any, str, str], None]):
        self.inventory = inventory
        self.signer = signer
        self._agents = agents  # the RPC client to the agents, made on first use (it needs the broker)
        self.refuse = refuse

    def sealed_document(self, host: str) -> dict[str, Any] | None:
        """The node's latest stored document, sealed for it; None when it has none."""
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

    def ask_plan(self, host: str, sealed: dict[str, Any]) -> Any:
        """The node's diff against ``sealed`` (nothing applied), if its answer is signed for this request."""
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

    def push_all(self, hosts: list[str]) -> dict[str, str]:
        """Push each host's stored document; returns why, for each host not pushed. A broker failure ends
        the round: the other pushes would wait for the same broker."""
        failed: dict[str, str] = {}
        for index, host in enumerate(hosts):
            try:
                self.push(host)
            except NotFound as exc:  # this node only (no document, no encryption key)
                failed[host] = str(exc)
            except Exception as exc:  # the bus: the broker is down or refuses us
                reason = _CREDENTIALS.sub(r"\1***@", f"{type(exc).__name__}: {exc}")
                failed.update((rest, reason) for rest in hosts[index:])
                break
        return failed
