"""The install guides, deployed from roles on a lab cloud and judged by the real Neutron.

One deployment = a lab cloud (MariaDB, Keystone, a RabbitMQ vhost), a coordinator with the
repository's roles and ``[neutron] cloud`` pointing at the lab's Keystone, and one lab node per
guide node, each with its agent and the real OpenStack units. ``deploy`` does what an operator
does: secrets and variables, the controller first (database, Keystone, schema, server), then
the other nodes; ``wait_alive`` asks Neutron until every agent the roles run is alive.
Used by the real-service tests, ``scripts/demo.sh`` and ``benchmarks/guides.py``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from nodeagent.fleet import escapes
from nodeagent.testing.lab import Fleet
from nodeagent.testing.labcloud import HOSTILE, LabCloud
from nodeagent.testing.waiting import NotReached, wait_until
from nodeagent.fleet.neutroncheck import AgentCheck, NeutronClient, compare, expected_agents

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Guide:
    """A guide's nodes (address on eth1, roles) and its variables."""

    name: str
    series: str
    nodes: dict[str, tuple[str, tuple[str, ...]]]
    variables: dict[str, str]
    node_variables: dict[str, dict[str, str]] = field(default_factory=dict)


def three_node(series: str = "2025.2", subnet: int = 6) -> Guide:
    """The three-node guide: Open vSwitch + GRE, self-service networks (option 2)."""
    return Guide("three-node (Open vSwitch + GRE)", series,
                 {"controller": (f"198.18.{subnet}.11/24", ("controller",)),
                  "network1": (f"198.18.{subnet}.21/24", ("network",)),
                  "compute1": (f"198.18.{subnet}.31/24", ("compute",))},
                 {"mechanism": "openvswitch", "overlay": "gre", "network_option": "self-service"},
                 {"network1": {"overlay_interface": "eth1", "external_interface": "eth2"},
                  "compute1": {"overlay_interface": "eth1"}})


def two_node(option: str = "self-service", series: str = "2024.2", subnet: int = 7) -> Guide:
    """The two-node guide: Linux bridge + VXLAN; option 1 (provider) or option 2 (self-service)."""
    interfaces = {"overlay_interface": "eth1", "provider_interface": "eth2"}
    return Guide(f"two-node (Linux bridge, {option})", series,
                 {"controller": (f"198.18.{subnet}.11/24", ("controller", "network")),
                  "compute1": (f"198.18.{subnet}.31/24", ("compute",))},
                 {"mechanism": "linuxbridge", "overlay": "vxlan", "network_option": option},
                 {"controller": interfaces, "compute1": interfaces})


@contextlib.contextmanager
def deployed(directory: Path, guide: Guide, nova: bool = False) -> Iterator["Deployment"]:
    """A guide deployed on a lab cloud of its own for the duration of the block, removed afterwards; with
    ``nova``, the real Nova (fake virt driver, ``labnova``) instead of its stand-ins."""
    deployment = Deployment(directory, guide, nova=nova)
    try:
        deployment.up()
        deployment.deploy()
        yield deployment
    finally:
        deployment.close()


def remove_lab(directory: Path) -> None:
    """Delete a closed lab's folder (logs, databases, the clouds.yaml with the lab admin password).

    Refused while anything is mounted under it: a node's view left mounted would take the host's files with it.
    """
    directory = Path(directory).resolve()
    with open("/proc/self/mountinfo") as mountinfo:  # field 5: the mount point, octal-escaped
        points = [Path(line.split()[4].encode().decode("unicode_escape")) for line in mountinfo]
    mounted = [str(p) for p in points if p == directory or directory in p.parents]
    if mounted:
        raise RuntimeError(f"not removing {directory}: still mounted under it: {', '.join(mounted)}")
    shutil.rmtree(directory)


class Deployment:
    """A guide on a lab cloud of its own, under ``directory``; ``close`` removes everything."""

    def __init__(self, directory: Path, guide: Guide, report_interval: int = 2, nova: bool = False):
        self.directory = Path(directory)
        self.guide = guide
        names = ["NEUTRON_PASS", "NEUTRON_DBPASS", "NOVA_PASS", "METADATA_SECRET"]
        names += ["NOVA_DBPASS", "PLACEMENT_PASS", "PLACEMENT_DBPASS"] if nova else []
        self.secrets = {name: HOSTILE + name.lower() + "-" + secrets.token_hex(4)  # URL, ini, SQL, shell, PyMySQL
                        for name in names}
        self.cloud = LabCloud(self.directory / "cloud", guide.series, nova=nova, nova_secrets=self.secrets)
        self.fleet: Fleet | None = None
        self.report_interval = report_interval
        self._neutron: NeutronClient | None = None

    def up(self, progress: Callable[[str], None] = lambda _: None) -> "Deployment":
        """The cloud's shared services, the coordinator, the nodes and their agents (nothing assigned yet)."""
        self.cloud.start()
        self.secrets.update(self.cloud.secrets())
        clouds = self.cloud.clouds_yaml(self.directory / "clouds.yaml")
        progress(f"lab cloud up: MariaDB, Keystone {self.cloud.keystone_url}, RabbitMQ vhost {self.cloud.rabbit_vhost}")
        # nodeagent's own messages go to the lab cloud's vhost too: nothing of another lab reaches this one
        cloud = self.cloud
        broker = (f"rabbit://{cloud.rabbit_user}:{escapes.url_userinfo(cloud.rabbit_password)}@127.0.0.1:5672/"
                  f"{cloud.rabbit_vhost}")
        self.fleet = Fleet(self.directory / "fleet", broker, report_interval=self.report_interval, auto_accept=True,
                           coordinator_options={"roles_dir": REPO / "etc" / "roles"}, cloud=self.cloud,
                           coordinator_sections={"neutron": {"cloud": "lab", "clouds_yaml": clouds,
                                                             "agent_alive_timeout": 20, "check_interval": 5}})
        self.fleet.start("coordinator")
        for host, (address, _) in self.guide.nodes.items():
            node = self.fleet.add_node(host, ["eth1", "eth2"])
            node.exec("ip", "addr", "add", address, "dev", "eth1")
            self.fleet.start(host)
            if self.cloud.nova:
                self.cloud.start_nova_relays(self.fleet.systemds[host], "controller" in self.guide.nodes[host][1])
        wait_until(lambda: all("eth1" in self.ctl("node", "show", h, "-f", "json", check=False).stdout
                          for h in self.guide.nodes), 120, "the agents' first reports")
        progress(f"{len(self.guide.nodes)} lab nodes up, each with its systemd and agent")
        return self

    def ctl(self, *args: str, check: bool = True, stdin: str = "", timeout: float = 60):
        return self.fleet.ctl(*args, check=check, stdin=stdin, timeout=timeout)

    def deploy(self, progress: Callable[[str], None] = lambda _: None) -> None:
        """The operator's steps: secrets, variables, then the controller, then every other node."""
        for key, value in self.secrets.items():
            self.ctl("secret", "set", key, stdin=value + "\n")
        for key, value in {**self.cloud.variables(), **self.guide.variables}.items():
            self.ctl("var", "set", key, value)
        for host, values in self.guide.node_variables.items():
            for key, value in values.items():
                self.ctl("var", "set", "--node", host, key, value)
        for host in self.guide.nodes:
            self.ctl("var", "set", "--node", host, "probe_access", self.probe_access(host))
        controller = next(h for h, (_, roles) in self.guide.nodes.items() if "controller" in roles)
        self.ctl("node", "assign", controller, *self.guide.nodes[controller][1])
        self.cloud.expose_neutron_api(self.fleet.systemds[controller])
        wait_until(lambda: self.reconciled(controller), 600, f"{controller}'s first reconcile")
        wait_until(self._api_answers, 120, "the Neutron API")
        progress(f"{controller}: database, Keystone, schema and server done; the API answers")
        for host, (_, roles) in self.guide.nodes.items():
            if host != controller:
                self.ctl("node", "assign", host, *roles)
        progress("the other nodes assigned")

    def probe_access(self, host: str) -> str:
        """How 'verify --traffic' reaches a node's view: as its agent's commands do, in its PID namespace too
        ('ip netns add' needs the /proc/self of the node's /proc)."""
        return self.cloud.command_prefix(self.fleet.systemds[host]).replace(" -u -- ", " -u -p -- ")

    def set_variable(self, key: str, value: str, timeout: float = 600) -> None:
        """Change a site variable as an operator would, and wait until every node has applied what it pushed."""
        self.ctl("var", "set", key, value)
        wait_until(lambda: all(self.reconciled(host) for host in self.guide.nodes), timeout,
              f"every node applying {key} = {value}")

    def set_variable_on(self, host: str, key: str, value: str, timeout: float = 600) -> None:
        """Change one node's variable, and wait until every node has applied what it pushed."""
        self.ctl("var", "set", "--node", host, key, value)
        wait_until(lambda: all(self.reconciled(h) for h in self.guide.nodes), timeout,
                   f"every node applying {key} = {value} on {host}")

    def node(self, host: str) -> dict[str, Any]:
        return json.loads(self.ctl("node", "show", host, "-f", "json").stdout)

    def reconciled(self, host: str) -> bool:
        """The node's agent finished a reconcile of its newest document."""
        node = self.node(host)
        status = node.get("status") or {}
        return status.get("reconciled_generation") == node["desired_generation"]

    def variables(self) -> dict[str, str]:
        """The site variables as the coordinator has them now."""
        return {row["Variable"]: row["Value"] for row in json.loads(self.ctl("var", "list", "-f", "json").stdout)}

    @property
    def neutron(self) -> NeutronClient:
        if self._neutron is None:
            self._neutron = NeutronClient("lab", str(self.directory / "clouds.yaml"))
        return self._neutron

    def _api_answers(self) -> bool:
        try:
            self.neutron.agents()
            return True
        except Exception:
            self._neutron = None
            return False

    def expected(self) -> dict[str, list[str]]:
        values = {**self.cloud.variables(), **self.guide.variables, **self.variables()}
        return {host: expected_agents(roles, values) for host, (_, roles) in self.guide.nodes.items()}

    def checks(self) -> list[AgentCheck]:
        return compare(self.expected(), self.neutron.agents())

    def wait_alive(self, timeout: float = 300) -> list[AgentCheck]:
        """Neutron's view once every expected agent is alive, or at the timeout (the caller asserts)."""
        def alive() -> list[AgentCheck] | None:
            checks = self.checks()
            return checks if all(c.ok for c in checks) else None
        try:
            return wait_until(alive, timeout, "every expected Neutron agent alive", step=2)
        except NotReached:
            return self.checks()

    def add_upstream(self, address: str = "198.19.67.1/24") -> str:
        """A namespace standing in for the provider network's upstream router, on the wire of the nodes' eth2
        (network1's br-ex port), with ``address`` and no other route; removed by ``close``. Returns its name."""
        name = f"{self.fleet.switch.name}up"
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        self._upstream = name
        self.fleet.switch.attach(name, "eth0", "eth2")
        subprocess.run(["ip", "netns", "exec", name, "ip", "addr", "add", address, "dev", "eth0"], check=True,
                       capture_output=True)
        return name

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.close()
        if getattr(self, "_upstream", None):
            subprocess.run(["ip", "netns", "del", self._upstream], capture_output=True)
        self.cloud.stop()
