"""Several ``nodeagentctl serve`` processes of one fleet on one database and topic, with the base configuration
simulated agents read (``nodeagent.testing.simulator``): the scale-out tests and benchmarks start them here."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from nodeagent.testing.simulator import simulated_facts

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


TRANSPORT_URL = "rabbit://guest:guest@127.0.0.1:5672/"
# A role that renders differently per node (its overlay address) and changes with one site variable.
TUNNEL_ROLE = """resources:
  - id: tunnel
    driver: ini
    path: /etc/neutron/tunnel.ini
    settings:
      ovs:
        local_ip: "{{ ipv4_of('eth1') }}"
        tag: "{{ tag }}"
"""


class Coordinators:
    """N ``nodeagentctl serve`` processes of one fleet, and nodeagentctl against their database.

    ``roles``: role name -> template; ``rabbit``: [oslo_messaging_rabbit] options for coordinators and agents
    alike (quorum queues); ``database_url`` None: SQLite in the shared state directory."""

    def __init__(self, directory: Path, database_url: str | None, count: int, roles: dict[str, str],
                 transport_url: str = TRANSPORT_URL, report_interval: int = 2, down_time: int = 12,
                 rabbit: dict[str, str] | None = None, metrics: bool = False, coordinator_options: str = ""):
        self.directory = directory
        exchange = f"scale-out-{uuid.uuid4().hex[:12]}"
        (directory / "roles").mkdir(parents=True)
        for name, template in roles.items():
            (directory / f"roles/{name}.yaml.j2").write_text(template)
        common = (f"transport_url = {transport_url}\ncontrol_exchange = {exchange}\n"
                  f"report_interval = {report_interval}\nrpc_response_timeout = 10\n")
        rabbit_options = rabbit or {}  # the coordinator's own prefetch default is what is tested (rpc.py)
        rabbit_section = "[oslo_messaging_rabbit]\n" + "".join(f"{k} = {v}\n" for k, v in rabbit_options.items())
        coordinator = (f"[coordinator]\nstate_dir = {directory / 'state'}\n"
                       + (f"database_connection = {database_url}\n" if database_url else "")
                       + f"roles_dir = {directory / 'roles'}\nauto_accept = true\nagent_down_time = {down_time}\n"
                       + coordinator_options)
        self.confs, self.metrics_urls = [], []
        for number in range(1, count + 1):
            path = directory / f"coordinator{number}.conf"
            own = ""
            if metrics:
                port = _free_port()
                own = f"metrics_address = 127.0.0.1:{port}\n"
                self.metrics_urls.append(f"http://127.0.0.1:{port}/metrics")
            path.write_text(f"[DEFAULT]\nhost = coordinator{number}\n{common}\n{coordinator}{own}{rabbit_section}")
            self.confs.append(path)
        self.public_key = directory / "coordinator.pub"
        self.public_key.write_text(self.ctl("keygen").stdout)
        self.agent_base = directory / "agents.conf"
        self.agent_base.write_text(f"[DEFAULT]\n{common}coordinator_public_key = {self.public_key}\n\n"
                                   f"{rabbit_section}")
        self.processes: list[subprocess.Popen] = []

    def ctl(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        program = Path(sys.executable).parent / "nodeagentctl"
        done = subprocess.run([str(program), "--config-file", str(self.confs[-1]), *args], capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"nodeagentctl {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def start(self) -> None:
        for index in range(len(self.confs)):
            self.processes.append(self._serve(index))

    def restart(self, index: int) -> None:
        """Start coordinator ``index`` again (after it was killed): a new process on the same configuration."""
        if self.processes[index].poll() is None:
            raise RuntimeError(f"coordinator{index + 1} is still running")
        self.processes[index] = self._serve(index)

    def _serve(self, index: int) -> subprocess.Popen:
        program = Path(sys.executable).parent / "nodeagentctl"
        with open(self.directory / f"coordinator{index + 1}.log", "ab") as log:
            return subprocess.Popen([str(program), "--config-file", str(self.confs[index]), "serve"], stdout=log,
                                    stderr=subprocess.STDOUT)

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

    def converged(self, hosts: list[str], tag: str, agents: str = "agents") -> bool:
        """every simulated node (under DIR/agents) alive, converged, its file with its own address and ``tag``"""
        nodes = self.nodes()
        if not all(h in nodes and nodes[h]["State"] == "converged" and nodes[h]["Alive"] == ":-)" for h in hosts):
            return False
        for index, host in enumerate(hosts):
            ini = self.directory / agents / host / "root/etc/neutron/tunnel.ini"
            address = simulated_facts(host, index)["interfaces"]["eth1"]["ipv4"][0].split("/")[0]
            text = ini.read_text() if ini.exists() else ""
            if f"local_ip = {address}" not in text or f"tag = {tag}" not in text:
                return False
        return True
