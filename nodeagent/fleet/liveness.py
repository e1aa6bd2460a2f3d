"""Liveness: a node that has not reported for ``agent_down_time`` is down (node.down); its next report
brings it up again (node.up, in the report intake)."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from nodeagent.fleet.inventory import Inventory, Node, NodeTrust, lock_wait
from nodeagent.fleet.notices import Notices
from nodeagent.process.metrics import CoordinatorMetrics

LOG = logging.getLogger(__name__)

# When a node was last heard: its sequence's row, written by every report taken (a change's transaction never
# holds it); nodes.last_heartbeat for a node not heard since the upgrade that added it.
HEARD = func.coalesce(NodeTrust.heard_at, Node.last_heartbeat)


class Liveness:
    """The down check and the gauges of the fleet's state, run by the serve loop every second."""

    def __init__(self, inventory: Inventory, notices: Notices, metrics: CoordinatorMetrics, down_time: float):
        self.inventory = inventory
        self.notices = notices
        self.metrics = metrics
        self.down_time = down_time

    def check_down(self) -> list[str]:
        """Mark nodes without a heartbeat for agent_down_time as down; returns them.

        Every coordinator runs this; each node is marked by one only: the update is conditional (still alive,
        still silent), so the one whose update changed the row records the event. No lock, so a hung
        coordinator cannot stop the others noticing."""
        limit = time.time() - self.down_time
        gone = []
        with self.inventory.session() as session:
            silent = session.execute(select(Node.name, HEARD).outerjoin(NodeTrust, NodeTrust.name == Node.name)
                                     .where(Node.alive.is_(True), HEARD < limit)).all()
        for name, heartbeat in silent:
            try:
                with self.inventory.session() as session:
                    if not self._mark_down(session, name, limit):
                        continue  # it reported meanwhile, or another coordinator marked it
                    self.metrics.down_detection_seconds.observe(time.time() - heartbeat)
                    self.inventory.add_event(name, "node.down", f"no heartbeat for {time.time() - heartbeat:.0f} s",
                                             session)
            except OperationalError as exc:
                if not lock_wait(exc):
                    raise
                continue  # a change holds its row: the next look marks it
            gone.append(name)
        for name in gone:
            LOG.warning("node %s is down", name)
            self.notices.notify("nodeagent.node.down", {"node": name})
            self.notices.alert({"type": "nodeagent.node.down", "node": name, "at": time.time()})
        return gone

    @staticmethod
    def _mark_down(session: Any, name: str, limit: float) -> bool:
        """Down, if still alive and still silent (not heard since ``limit``): True when this call marked it."""
        heard = select(NodeTrust.name).where(NodeTrust.name == name, NodeTrust.heard_at >= limit).exists()
        marked = session.execute(update(Node.__table__).where(
            Node.name == name, Node.alive.is_(True), Node.last_heartbeat < limit, ~heard).values(alive=False))
        return marked.rowcount == 1

    def update_gauges(self) -> None:
        """The fleet's gauges: a few columns of every node (not their facts, health and status)."""
        with self.inventory.session() as session:
            rows = session.execute(select(Node.name, Node.enrolment, Node.alive, HEARD, Node.held)
                                   .outerjoin(NodeTrust, NodeTrust.name == Node.name)).all()
        now = time.time()
        states = {"up": 0, "down": 0, "pending": 0}
        for name, enrolment, alive, heartbeat, _held in rows:
            states["pending" if enrolment != "accepted" else "up" if alive else "down"] += 1
            if heartbeat:
                self.metrics.heartbeat_age.labels(name).set(now - heartbeat)
        for state, number in states.items():
            self.metrics.nodes.labels(state).set(number)
        self.metrics.held_nodes.set(sum(1 for row in rows if row.held))
