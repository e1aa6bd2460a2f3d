"""Delivery of documents to agents: sealed for one node (signed, encrypted to its key), pushed, planned.

What is stored in the inventory is the truth; a push is only a shortcut. An agent that missed a
push fetches its document when its heartbeat's answer names a newer generation, or when it
(re)connects (``Reports.fetch_state``). A push takes the documents the caller has in hand (the
converge that stored them): nothing is read back from the database to be sent.
"""

from __future__ import annotations

import functools
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from nodeagent.fleet.errors import NotFound
from nodeagent.fleet.inventory import Inventory, NodeTrust
from nodeagent.wire.protocol import CoordinatorChannel, Refused

_CREDENTIALS = re.compile(r"(//)[^/@\s]*@")  # user:password@ in a broker URL, should an error show one


@dataclass(frozen=True)
class Outgoing:
    """A document to send: for ``host``, its body carrying its generation, and the node's encryption key
    (None when the node has presented none: nothing is sent to it in clear)."""

    host: str
    body: dict[str, Any]
    box_key: str | None


def box_key(session: Any, host: str) -> str | None:
    known = session.get(NodeTrust, host)
    return known.box_key if known is not None else None


PUSH_THREADS = 8  # a push waits about 2 ms for the broker's confirm: 1,000 nodes in one thread took 2-4 s


class Delivery:
    """Seals documents for one node each and sends them over the bus, through one RPC client."""

    def __init__(self, inventory: Inventory, channel: CoordinatorChannel, agents: Callable[[], Any],
                 refuse: Callable[[Any, str, str], None]):
        self.inventory = inventory
        self.channel = channel
        self._agents = agents  # makes the RPC client to the agents: on first use, as it needs the broker
        self.refuse = refuse

    @functools.cached_property
    def agents(self) -> Any:
        """The one RPC client to the agents."""
        return self._agents()

    def seal(self, outgoing: Outgoing) -> dict[str, Any]:
        if not outgoing.box_key:
            raise NotFound(f"node '{outgoing.host}' has presented no encryption key yet (an agent older than "
                           "this coordinator?): nothing is sent to it in clear")
        return self.channel.seal_document(outgoing.host, outgoing.body, outgoing.box_key)

    def sealed_document(self, host: str) -> dict[str, Any] | None:
        """The node's latest stored document, sealed for it (an agent's fetch); None when it has none."""
        with self.inventory.session() as session:
            stored = self.inventory.document(host, session=session)
            if stored is None:
                return None
            outgoing = Outgoing(host, {**stored.body, "node": host, "generation": stored.generation},
                                box_key(session, host))
        return self.seal(outgoing)

    def ask_plan(self, host: str, body: dict[str, Any]) -> Any:
        """The node's diff against ``body`` (nothing applied), if its answer is signed for this request."""
        with self.inventory.session() as session:
            request = self.seal(Outgoing(host, body, box_key(session, host)))
        return self.read_answer(host, request, self.agents.plan_state(host, request))

    def read_answer(self, host: str, request: dict[str, Any], answer: Any) -> Any:
        """What a node answered ``request``, if signed by its accepted key for this very request; a refusal is
        recorded and raised."""
        node = self.inventory.node(host)
        if node is None or not node.public_key:
            raise Refused(f"the answer of '{host}': not an accepted node")
        try:
            return self.channel.read_reply(answer, host, node.public_key, request)
        except Refused as exc:
            self.refuse(host, "answer.refused", str(exc))
            raise Refused(f"the answer of '{host}' is refused: {exc}") from None

    def push_all(self, documents: list[Outgoing]) -> dict[str, str]:
        """Push each document, PUSH_THREADS at a time (each waits for the broker's confirm); returns why, for
        each host not pushed. A broker failure ends the round: the other pushes would wait for the same broker."""
        failed: dict[str, str] = {}
        broker_down: list[str] = []

        def push(outgoing: Outgoing) -> None:
            if broker_down:
                failed[outgoing.host] = broker_down[0]
                return
            try:
                self.agents.apply_state(outgoing.host, self.seal(outgoing))
            except NotFound as exc:  # this node only (no encryption key)
                failed[outgoing.host] = str(exc)
            except Exception as exc:  # the bus: the broker is down or refuses us
                broker_down.append(_CREDENTIALS.sub(r"\1***@", f"{type(exc).__name__}: {exc}"))
                failed[outgoing.host] = broker_down[0]

        if documents:
            _ = self.agents  # the one RPC client, made before the threads share it
        if len(documents) <= 1:
            for outgoing in documents:
                push(outgoing)
        else:
            with ThreadPoolExecutor(min(PUSH_THREADS, len(documents)), thread_name_prefix="push") as pool:
                list(pool.map(push, documents))
        return failed
