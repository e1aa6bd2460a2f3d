"""Enrolment rules: which names a node may have, trusting a node (accept) and taking it back (revoke, forget)."""

from __future__ import annotations

import re

from sqlalchemy import delete

from nodeagent.fleet.errors import NotFound
from nodeagent.fleet.inventory import DriftRecord, Inventory, Node, NodeTrust, StateDocument

MAX_NAME = 253
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def valid_host(name: object) -> bool:
    """An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 63 each, 253 in all."""
    return isinstance(name, str) and 0 < len(name) <= MAX_NAME and all(_LABEL.match(label)
                                                                      for label in name.split("."))


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
