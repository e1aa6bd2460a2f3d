"""Several agents in one process (threads), sharing one RPC transport, against the real RabbitMQ and a real
coordinator: an agent is an object, not a process (what the fleet simulator will build on).

Each agent has its lab node (namespace, scratch root, state directory) as ``nodeagent run`` would; the
coordinator runs as its own process. The agents are started and stopped from threads of their own.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time

import psutil
import pytest
import yaml

from nodeagent.cli import config
from nodeagent.process.daemon import HostFilter
from nodeagent.node.agent import Agent
from nodeagent.testing.lab import Fleet
from nodeagent.testing.waiting import wait_until
from nodeagent.wire import rpc

NAMES = ("sim-a", "sim-b", "sim-c")
BROKER_PORT = 5672


def broker_ports() -> set[int]:
    """The local ports of this process's TCP connections to RabbitMQ."""
    return {c.laddr.port for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == BROKER_PORT and c.status == psutil.CONN_ESTABLISHED}


def rabbitmqctl(*columns: str) -> list[list[str]]:
    done = subprocess.run(["rabbitmqctl", "-q", "--no-table-headers", *columns], capture_output=True, text=True,
                          check=True, timeout=60)
    return [line.split("\t") for line in done.stdout.splitlines() if line.strip()]


def consumed_queues(ports: set[int]) -> list[str]:
    """The queues the broker delivers to over the connections from ``ports`` (one entry per consumer)."""
    connections = {pid for pid, port in rabbitmqctl("list_connections", "pid", "peer_port") if int(port) in ports}
    channels = {pid for pid, connection in rabbitmqctl("list_channels", "pid", "connection")
                if connection in connections}
    return [queue for queue, channel in rabbitmqctl("list_consumers", "queue_name", "channel_pid")
            if channel in channels]


class Records(logging.Handler):
    """Every record with the host it names (what ``nodeagent run``'s log format shows)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.addFilter(HostFilter("-"))
        self.seen: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.host, record.name, record.getMessage()))


@pytest.fixture
def fleet(tmp_path):
    fleet = Fleet(tmp_path / "fleet", report_interval=1, auto_accept=True)
    try:
        for name in NAMES:
            fleet.add_node(name, [])
        fleet.start("coordinator")
        yield fleet
    finally:
        fleet.close()


@pytest.fixture
def records():
    handler = Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def in_threads(function, agents: list[Agent]) -> None:
    """``function(agent)`` for every agent at once, each from a thread that is not the main one."""
    threads = [threading.Thread(target=function, args=(agent,)) for agent in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()


def test_three_agents_share_a_transport_converge_name_their_hosts_and_stop(fleet, records):
    confs = [config.make_conf([str(fleet.agent_conf(name))], with_messaging=True) for name in NAMES]
    before = broker_ports()  # another test of this process may have left its own: not this test's to count
    transport, notifications = rpc.rpc_transport(confs[0]), rpc.notification_transport(confs[0])
    agents = [Agent(conf, transport=transport, notification_transport=notifications) for conf in confs]
    assert not any((fleet.directory / name / "state").exists() for name in NAMES)  # the constructor made nothing
    try:
        in_threads(Agent.start, agents)

        def listed():
            """every agent reported"""
            return set(NAMES) <= {row["Host"] for row in json.loads(fleet.ctl("node", "list", "-f", "json").stdout)}
        wait_until(listed, timeout=30)
        for name in NAMES:
            document = {"resources": [{"id": "conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
                                       "settings": {"DEFAULT": {"host": name}}}]}
            (fleet.directory / f"{name}.yaml").write_text(yaml.safe_dump(document))
            fleet.ctl("node", "set-state", name, str(fleet.directory / f"{name}.yaml"))

        def converged():
            """every node converged on its own document"""
            rows = {row["Host"]: row for row in json.loads(fleet.ctl("node", "list", "-f", "json").stdout)}
            return all(rows[n]["Generation"] == "1/1" and rows[n]["State"] == "converged" for n in NAMES)
        wait_until(converged, timeout=30)
        for name in NAMES:
            assert f"host = {name}" in (fleet.directory / name / "root/etc/neutron/neutron.conf").read_text()

        # Shared: the agents' calls all wait for their answers on one reply queue (an agent with a transport
        # of its own has a reply queue, and a connection for it, of its own). Each agent listens on its
        # own queues, over a connection of its server's own (oslo.messaging makes one per server).
        ports = broker_ports() - before
        queues = consumed_queues(ports)
        assert len([q for q in queues if q.startswith("reply_")]) == 1
        for name in NAMES:
            assert f"{fleet.exchange}.nodeagent.{name}" in queues
        print(f"{len(NAMES)} agents sharing a transport: {len(ports)} connections to the broker")
    finally:
        started = time.monotonic()
        in_threads(Agent.stop, agents)
        stop_seconds = time.monotonic() - started
        in_threads(Agent.stop, agents)  # again: nothing more to do
        rpc.close_transport(transport)
        notifications.cleanup()

    assert all(agent.stopped.is_set() and agent.server is None for agent in agents)
    assert stop_seconds < 10  # generous: a stop is about half a second (benchmarks/teardown.py)

    def threads_gone():
        """no thread of any agent is left"""
        return not [t.name for t in threading.enumerate() if any(name in t.name for name in NAMES)]
    wait_until(threads_gone, timeout=15)
    wait_until(lambda: not broker_ports() - before, timeout=15)

    for name in NAMES:  # the lines about each agent, from its threads or another's, name its host
        assert any(host == name and logger == "nodeagent.node.enforcer" and f"{name} generation 1" in message
                   for host, logger, message in records.seen)
        assert (name, "nodeagent.node.agent", "stopped") in records.seen
    hosts = {host for host, logger, _ in records.seen if logger.startswith("nodeagent.node")}
    assert hosts == set(NAMES)


def test_a_stop_closes_every_connection_while_the_broker_answers(tmp_path, records):
    """No coordinator answers (the broker does): the agent's heartbeats time out, and a burst of notifications is
    still leaving when it is stopped. The stop takes longer than its usual half second then, and still closes
    every connection the agent made before it returns (they used to be left "to close by themselves")."""
    fleet = Fleet(tmp_path / "fleet", report_interval=1, auto_accept=True)
    try:
        fleet.add_node(NAMES[0], [])
        before = broker_ports()
        agent = Agent(config.make_conf([str(fleet.agent_conf(NAMES[0]))], with_messaging=True))
        agent.start()
        wait_until(lambda: any("coordinator unreachable" in message for _, _, message in records.seen), timeout=30)
        assert broker_ports() - before  # it is connected
        for number in range(1000):  # about 100 MB: seconds to send, whatever the machine
            agent.broker.notify("nodeagent.test.burst", {"number": number, "padding": "x" * 100_000})
        agent.stop()
        assert not broker_ports() - before, "the agent's connections are still open after its stop"
        assert not [m for _, _, m in records.seen if "close by themselves" in m]
        time.sleep(1)
        assert not broker_ports() - before, "a connection was made again after the stop"
    finally:
        fleet.close()
        # the burst waits in the fleet's notification queue: not left in the shared broker
        for (queue,) in rabbitmqctl("list_queues", "name"):
            if queue.startswith(fleet.exchange):
                subprocess.run(["rabbitmqctl", "-q", "delete_queue", queue], capture_output=True, timeout=60)
