"""Several coordinators on one real database serve one simulated fleet: any one killed or hung, the others carry
on; each generation is decided once.

Three ``nodeagentctl serve`` processes share a private PostgreSQL (their locks: its advisory locks, through
tooz) and the RPC topic on the real RabbitMQ; the fleet is the simulator's real agents (two processes), each
reporting facts of its own, so the role renders a different local_ip per node.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from nodeagent.testing.coordinators import TUNNEL_ROLE, Coordinators
from nodeagent.testing.simulator import SimulatedFleet
from nodeagent.testing.sqlserver import PostgreSQL
from nodeagent.testing.waiting import wait_until

AGENTS = 24


@pytest.fixture
def database(tmp_path):
    with PostgreSQL(tmp_path / "postgresql") as server:
        yield server


@pytest.fixture
def coordinators(tmp_path, database):
    # A coordinator hung in the middle of a batch of heartbeats holds those nodes' rows until the server ends its
    # transaction (database_idle_transaction_timeout, 5 s by default): the others pass them over meanwhile, so
    # those nodes lose a heartbeat or two, within the down time (12 s).
    group = Coordinators(tmp_path / "fleet", database.create_database("inventory"), 3, {"tunnel": TUNNEL_ROLE})
    group.start()
    try:
        yield group
    finally:
        group.stop()


def duplicate_generations(database: PostgreSQL) -> str:
    return database.sql("SELECT node, generation FROM documents GROUP BY node, generation HAVING count(*) > 1",
                        database="inventory").stdout.strip()


def test_three_coordinators_serve_one_fleet_and_any_one_killed_or_hung_changes_nothing(coordinators, database):
    fleet = SimulatedFleet(coordinators.directory / "agents", coordinators.agent_base, AGENTS, processes=2)
    with fleet:
        hosts = fleet.hosts
        wait_until(lambda: set(hosts) <= set(coordinators.nodes()), timeout=90)
        coordinators.ctl("var", "set", "tag", "red")
        for host in hosts:  # assigned one by one from the CLI while the three serve the fleet's reports
            coordinators.ctl("node", "assign", host, "tunnel")
        wait_until(lambda: coordinators.converged(hosts, "red"), timeout=120)

        coordinators.processes[0].kill()  # dead: its broker connections and database locks go with it
        coordinators.ctl("var", "set", "tag", "blue")
        wait_until(lambda: coordinators.converged(hosts, "blue"), timeout=120)

        os.kill(coordinators.processes[1].pid, signal.SIGSTOP)  # hung: alive to the broker, answering nothing
        try:
            coordinators.ctl("var", "set", "tag", "green")
            wait_until(lambda: coordinators.converged(hosts, "green"), timeout=120)
            # Hung for longer than the down time (12 s): it holds a few reports (its prefetch), never a node's
            # every report, and a report it holds costs its node one interval, not the down time.
            time.sleep(14)
            events = json.loads(coordinators.ctl("events", "--type", "node.down", "-f", "json").stdout)
            assert events == []  # no node was ever silent long enough: the one left answered them all
        finally:
            os.kill(coordinators.processes[1].pid, signal.SIGCONT)
    assert duplicate_generations(database) == ""
    generations = {row["Generation"] for row in coordinators.nodes().values()}
    assert generations == {"3/3"}  # red, blue, green: one document each, decided once
