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
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from nodeagent.testing.simulator import SimulatedFleet, simulated_facts
from nodeagent.testing.sqlserver import PostgreSQL
from nodeagent.testing.waiting import wait_until

AGENTS = 24
ROLE = """resources:
  - id: tunnel
    driver: ini
    path: /etc/neutron/tunnel.ini
    settings:
      ovs:
        local_ip: "{{ ipv4_of('eth1') }}"
        tag: "{{ tag }}"
"""


class Coordinators:
    """N ``nodeagentctl serve`` processes of one fleet, and nodeagentctl against their database."""

    def __init__(self, directory: Path, database_url: str, count: int):
        self.directory = directory
        exchange = f"scale-out-{uuid.uuid4().hex[:12]}"
        (directory / "roles").mkdir(parents=True)
        (directory / "roles/tunnel.yaml.j2").write_text(ROLE)
        common = (f"transport_url = rabbit://guest:guest@127.0.0.1:5672/\ncontrol_exchange = {exchange}\n"
                  "report_interval = 2\nrpc_response_timeout = 10\n")
        coordinator = (f"[coordinator]\nstate_dir = {directory / 'state'}\ndatabase_connection = {database_url}\n"
                       f"roles_dir = {directory / 'roles'}\nauto_accept = true\nagent_down_time = 12\n")
        self.confs = []
        for number in range(1, count + 1):
            path = directory / f"coordinator{number}.conf"
            path.write_text(f"[DEFAULT]\nhost = coordinator{number}\n{common}\n{coordinator}"
                            "[oslo_messaging_rabbit]\nrabbit_qos_prefetch_count = 10\n")
            self.confs.append(path)
        self.public_key = directory / "coordinator.pub"
        self.public_key.write_text(self.ctl("keygen").stdout)
        self.agent_base = directory / "agents.conf"
        self.agent_base.write_text(f"[DEFAULT]\n{common}coordinator_public_key = {self.public_key}\n")
        self.processes: list[subprocess.Popen] = []

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        program = Path(sys.executable).parent / "nodeagentctl"
        done = subprocess.run([str(program), "--config-file", str(self.confs[-1]), *args], capture_output=True,
                              text=True, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"nodeagentctl {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def start(self) -> None:
        program = Path(sys.executable).parent / "nodeagentctl"
        for number, conf in enumerate(self.confs, 1):
            log = open(self.directory / f"coordinator{number}.log", "ab")
            self.processes.append(subprocess.Popen([str(program), "--config-file", str(conf), "serve"],
                                                   stdout=log, stderr=subprocess.STDOUT))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def nodes(self) -> dict[str, dict]:
        return {row["Host"]: row for row in json.loads(self.ctl("node", "list", "-f", "json").stdout)}


@pytest.fixture
def database(tmp_path):
    with PostgreSQL(tmp_path / "postgresql") as server:
        yield server


@pytest.fixture
def coordinators(tmp_path, database):
    group = Coordinators(tmp_path / "fleet", database.create_database("inventory"), 3)
    group.start()
    try:
        yield group
    finally:
        group.stop()


def converged_on(coordinators: Coordinators, hosts: list[str], tag: str) -> bool:
    """every simulated node alive, converged, its document holding its own address and the tag"""
    nodes = coordinators.nodes()
    if not all(h in nodes and nodes[h]["State"] == "converged" and nodes[h]["Alive"] == ":-)" for h in hosts):
        return False
    for index, host in enumerate(hosts):
        ini = Path(coordinators.directory / "agents" / host / "root/etc/neutron/tunnel.ini")
        address = simulated_facts(host, index)["interfaces"]["eth1"]["ipv4"][0].split("/")[0]
        if not ini.exists() or f"local_ip = {address}" not in ini.read_text() or f"tag = {tag}" not in \
                ini.read_text():
            return False
    return True


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
        wait_until(lambda: converged_on(coordinators, hosts, "red"), timeout=120)

        coordinators.processes[0].kill()  # dead: its broker connections and database locks go with it
        coordinators.ctl("var", "set", "tag", "blue")
        wait_until(lambda: converged_on(coordinators, hosts, "blue"), timeout=120)

        os.kill(coordinators.processes[1].pid, signal.SIGSTOP)  # hung: alive to the broker, answering nothing
        try:
            coordinators.ctl("var", "set", "tag", "green")
            wait_until(lambda: converged_on(coordinators, hosts, "green"), timeout=120)
            events = json.loads(coordinators.ctl("events", "--type", "node.down", "-f", "json").stdout)
            assert events == []  # no node was ever silent long enough: the one left answered them all
        finally:
            os.kill(coordinators.processes[1].pid, signal.SIGCONT)
    assert duplicate_generations(database) == ""
    generations = {row["Generation"] for row in coordinators.nodes().values()}
    assert generations == {"3/3"}  # red, blue, green: one document each, decided once
