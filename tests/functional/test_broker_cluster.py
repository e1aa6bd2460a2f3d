"""RabbitMQ as operators run it: a three-node cluster of the test's own, quorum queues, a ``transport_url`` naming
every node. The broker node everyone is connected to is killed in the middle: agents and the coordinator fail
over, the next change converges everywhere, and every agent's events arrive exactly once."""

from __future__ import annotations

import collections
import json

import pytest

from nodeagent.testing.coordinators import TUNNEL_ROLE, Coordinators
from nodeagent.testing.rabbitcluster import RabbitCluster
from nodeagent.testing.simulator import SimulatedFleet
from nodeagent.testing.waiting import wait_until

AGENTS = 8


@pytest.fixture
def cluster(tmp_path):
    with RabbitCluster(tmp_path / "rabbit", nodes=3) as cluster:
        yield cluster


def applied(coordinators: Coordinators) -> collections.Counter:
    """(node, generation) of every 'apply.succeeded' event in the inventory, counted."""
    events = json.loads(coordinators.ctl("events", "--type", "apply.succeeded", "-f", "json").stdout)
    return collections.Counter((e["Node"], e["Detail"].split(":")[0]) for e in events)


def test_a_killed_broker_node_loses_nothing_and_stops_no_one(tmp_path, cluster):
    coordinators = Coordinators(tmp_path / "fleet", None, 1, {"tunnel": TUNNEL_ROLE}, transport_url=cluster.url(),
                                down_time=30, rabbit={"rabbit_quorum_queue": "true"})
    coordinators.start()
    fleet = SimulatedFleet(coordinators.directory / "agents", coordinators.agent_base, AGENTS)
    try:
        with fleet:
            hosts = fleet.hosts
            wait_until(lambda: set(hosts) <= set(coordinators.nodes()), timeout=90)
            coordinators.ctl("var", "set", "tag", "red")
            for host in hosts:
                coordinators.ctl("node", "assign", host, "tunnel")
            wait_until(lambda: coordinators.converged(hosts, "red"), timeout=90)
            queues = cluster.nodes[1].ctl("list_queues", "-q", "--no-table-headers", "name", "type").stdout
            own = [line.split() for line in queues.splitlines() if ".nodeagent." in line]
            assert len(own) >= AGENTS and {kind for _, kind in own} == {"quorum"}, queues

            cluster.nodes[0].kill()  # the first host of the URL: where every client connected
            coordinators.ctl("var", "set", "tag", "blue")
            wait_until(lambda: coordinators.converged(hosts, "blue"), timeout=120)
            wait_until(lambda: set(applied(coordinators)) >= {(h, f"generation {g}") for h in hosts for g in (1, 2)},
                       timeout=60)
            assert max(applied(coordinators).values()) == 1  # each agent's event stored once
            events = json.loads(coordinators.ctl("events", "--type", "node.down", "-f", "json").stdout)
            assert events == []
    finally:
        coordinators.stop()
