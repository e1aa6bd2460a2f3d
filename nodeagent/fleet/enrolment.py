"""Enrolment rules: which names a node may have, how many may enrol (the gate), trusting a node (accept) and
taking it back (revoke, forget)."""

from __future__ import annotations

import collections
import re
import threading
import time
from typing import Any, Callable

from sqlalchemy import delete, func, select

from nodeagent.fleet.errors import NotFound
from nodeagent.fleet.inventory import DriftRecord, Inventory, Node, NodeTrust, StateDocument
from nodeagent.wire.protocol import Refused

MAX_NAME = 253
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def valid_host(name: object) -> bool:
    """An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 63 each, 253 in all."""
    return isinstance(name, str) and 0 < len(name) <= MAX_NAME and all(_LABEL.match(label)
                                                                      for label in name.split("."))


class Limited(Refused):
    """A first contact past the gate's cap or rate."""


class Gate:
    """Bounds pending enrolments, which anyone on the broker can make up (each costs a row and an event): at
    most ``max_pending`` nodes waiting for an operator, at most ``per_minute`` new ones in any minute.
    (With ``auto_accept`` an operator let every first contact in: a lab's, not gated.) The rate is this
    coordinator's; the cap is the inventory's, whatever the number of coordinators."""

    def __init__(self, max_pending: int, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.max_pending = max_pending
        self.per_minute = per_minute
        self.clock = clock
        self._recent: collections.deque[float] = collections.deque()  # when the last enrolments were
        self._lock = threading.Lock()  # RPC threads enrol at once

    def admit(self, session: Any) -> None:
        """Count one more node waiting for an operator, or raise ``Limited``."""
        with self._lock:
            now = self.clock()
            while self._recent and now - self._recent[0] >= 60:
                self._recent.popleft()
            if len(self._recent) >= self.per_minute:
                raise Limited(f"enrolment limited: {self.per_minute} new nodes a minute (enrolments_per_minute)")
            if session.scalar(select(func.count()).select_from(Node).where(
                    Node.enrolment == "pending")) >= self.max_pending:
                raise Limited(f"enrolment limited: {self.max_pending} nodes already wait for an operator "
                              "(max_pending_nodes)")
            self._recent.append(now)


def revoke(inventory: Inventory, host: str) -> None:
    """Refuse the node from now on: its key and encryption key forgotten, no document sent, reports refused.
    Its name stays taken until ``forget``."""
    with inventory.session() as session:
        node = session.get(Node, host)
        if node is None:
            raise NotFound(f"no node '{host}'")
        node.enrolment = "revoked"
        node.public_key = None
        node.alive = False
        session.execute(delete(NodeTrust).where(NodeTrust.name == host))
        inventory.add_event(host, "node.revoked", "key forgotten; its reports are refused", session)


def forget(inventory: Inventory, host: str) -> None:
    """Remove every trace of the node but its events: a later agent of that name enrols afresh (pending)."""
    with inventory.session() as session:
        node = session.get(Node, host)
        if node is None:
            raise NotFound(f"no node '{host}'")
        for table, column in ((StateDocument, StateDocument.node), (DriftRecord, DriftRecord.node),
                              (NodeTrust, NodeTrust.name)):
            session.execute(delete(table).where(column == host))
        session.delete(node)
        inventory.add_event(host, "node.forgotten", "documents, keys and drift records removed", session)


def accept(inventory: Inventory, host: str) -> None:
    """Trust the key the node presented: from then on its reports count and it gets its document."""
    with inventory.session() as session:
        node = session.get(Node, host)
        if node is None:
            raise NotFound(f"no node '{host}' has asked to enrol")
        node.enrolment = "accepted"
        inventory.add_event(host, "node.accepted", f"key {node.public_key}", session)
