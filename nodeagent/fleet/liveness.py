"""Liveness: a node that has not reported for ``agent_down_time`` is down (node.down); its next report
brings it up again (node.up, in the report intake)."""

from __future__ import annotations

import logging
import time

from sqlalchemy import select, update

from nodeagent.fleet.inventory import Inventory, Node
from nodeagent.fleet.notices import Notices
from nodeagent.process.metrics import CoordinatorMetrics

LOG = logging.getLogger(__name__)


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
            silent = session.execute(select(Node.name, Node.last_heartbeat).where(
                Node.alive.is_(True), Node.last_heartbeat < limit)).all()
        for name, heartbeat in silent:
            with self.inventory.session() as session:
                marked = session.execute(update(Node).where(Node.name == name, Node.alive.is_(True),
                                                            Node.last_heartbeat < limit).values(alive=False))
                if marked.rowcount != 1:
                    continue  # it reported meanwhile, or another coordinator marked it
                gone.append(name)
                self.metrics.down_detection_seconds.observe(time.time() - heartbeat)
                self.inventory.add_event(name, "node.down", f"no heartbeat for {time.time() - heartbeat:.0f} s",
                                         session)
        for name in gone:
            LOG.warning("node %s is down", name)
            self.notices.notify("nodeagent.node.down", {"node": name})
            self.notices.alert({"type": "nodeagent.node.down", "node": name, "at": time.time()})
        return gone

    def update_gauges(self) -> None:
        """The fleet's gauges: a few columns of every node (not their facts, health and status)."""
        with self.inventory.session() as session:
            rows = session.execute(select(Node.name, Node.enrolment, Node.alive, Node.last_heartbeat,
                                          Node.held)).all()
        now = time.time()
        states = {"up": 0, "down": 0, "pending": 0}
        for name, enrolment, alive, heartbeat, _held in rows:
            states["pending" if enrolment != "accepted" else "up" if alive else "down"] += 1
            if heartbeat:
                self.metrics.heartbeat_age.labels(name).set(now - heartbeat)
        for state, number in states.items():
            self.metrics.nodes.labels(state).set(number)
        self.metrics.held_nodes.set(sum(1 for row in rows if row.held))
