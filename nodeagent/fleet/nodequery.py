"""The fleet's node list and its filters: one query behind ``nodeagentctl node list`` and the web view's fleet page.

Filters combine: a role, a state, open drift only, down or up only; rows come sorted by one of ``SORT_KEYS``.
The Neutron column (agents alive / expected, from the real Neutron) is here too, so both show the same figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from nodeagent.fleet.inventory import Inventory, Node

if TYPE_CHECKING:
    from nodeagent.fleet.neutroncheck import Verifier

STATES = ("pending", "held", "rolled_back", "failed", "converging", "converged", "revoked")  # Node.state's values
SORT_KEYS: dict[str, Callable[[Node], object]] = {
    "host": lambda n: n.name, "state": lambda n: (n.state, n.name),
    "heartbeat": lambda n: (n.last_heard or 0, n.name),
    "generation": lambda n: (n.desired_generation, n.name)}


@dataclass(frozen=True)
class NodeFilter:
    """What ``node list`` narrows the fleet to; the defaults keep every node. ``alive``: None any, True up only,
    False down only."""

    role: str | None = None
    state: str | None = None
    drifted: bool = False
    alive: bool | None = None
    sort: str = "host"


@dataclass(frozen=True)
class NodeRow:
    """One node of the list, with how many of its resources have open drift."""

    node: Node
    drifted: int


def select(inventory: Inventory, chosen: NodeFilter = NodeFilter()) -> list[NodeRow]:
    """The nodes ``chosen`` keeps, in its order."""
    drifted = inventory.open_drift_counts()
    nodes = [node for node in inventory.nodes()
             if (chosen.role is None or chosen.role in (node.roles or []))
             and (chosen.state is None or node.state == chosen.state)
             and (not chosen.drifted or drifted.get(node.name))
             and (chosen.alive is None or bool(node.alive) == chosen.alive)]
    nodes.sort(key=SORT_KEYS[chosen.sort])
    return [NodeRow(node, drifted.get(node.name, 0)) for node in nodes]


def neutron_column(verifier: Verifier) -> Callable[[str], str] | None:
    """host -> 'alive/expected' agents from the real Neutron ('?' when it cannot be asked, '-' when the node's
    roles run none), or None when verification is off."""
    if not verifier.enabled:
        return None
    try:
        checks = verifier.checks()
    except Exception:
        return lambda host: "?"
    counts: dict[str, list[int]] = {}
    for check in checks:
        counts.setdefault(check.host, [0, 0])
        counts[check.host][0] += check.ok
        counts[check.host][1] += 1
    return lambda host: "{}/{}".format(*counts[host]) if host in counts else "-"
