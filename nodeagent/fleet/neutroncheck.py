"""The guides' last step as a product feature: ask the real Neutron which agents are alive.

Every install guide ends with ``openstack network agent list``: each agent the nodes should run
is listed, on its host, alive. The coordinator knows which agents a node's roles start
(expected); Neutron knows which registered and keep reporting (alive). The difference, per host
and agent, with a hint where to look, is what an operator needs after a push.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from oslo_config import cfg

from nodeagent.fleet.inventory import Inventory
from nodeagent.fleet.notices import Notices
from nodeagent.fleet.roles import DEFAULTS

LOG = logging.getLogger(__name__)


# What `openstack network agent list` calls each binary, and where an operator looks when it is not alive.
AGENT_TYPES = {
    "neutron-openvswitch-agent": "Open vSwitch agent",
    "neutron-linuxbridge-agent": "Linux bridge agent",
    "neutron-dhcp-agent": "DHCP agent",
    "neutron-l3-agent": "L3 agent",
    "neutron-metadata-agent": "Metadata agent",
}
HINTS = {
    "neutron-openvswitch-agent": "systemctl status neutron-openvswitch-agent; its log names a missing bridge "
                                 "('Bridge br-ex ... does not exist') or an unreachable transport_url",
    "neutron-linuxbridge-agent": "systemctl status neutron-linuxbridge-agent; physical_interface_mappings must "
                                 "name an interface of the node, ipset must be installed (or enable_ipset false)",
    "neutron-dhcp-agent": "systemctl status neutron-dhcp-agent; dhcp_agent.ini interface_driver and transport_url",
    "neutron-l3-agent": "systemctl status neutron-l3-agent; l3_agent.ini interface_driver and transport_url",
    "neutron-metadata-agent": "systemctl status neutron-metadata-agent; metadata_agent.ini and transport_url",
}
# Extensions the guides' networks need from the server (`openstack extension list --network`).
REQUIRED_EXTENSIONS = {"provider": ("agent", "port-security"), "self-service": ("agent", "port-security", "router")}


@dataclass(frozen=True)
class AgentCheck:
    """One expected agent as Neutron sees it: alive, dead (listed, not reporting) or missing (never listed)."""

    host: str
    binary: str
    state: str
    hint: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "alive"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_agents(roles: Iterable[str], variables: dict[str, Any]) -> list[str]:
    """The Neutron agents a node with ``roles`` runs, as binaries (the roles' service resources)."""
    values = {**DEFAULTS, **variables}
    roles = set(roles)
    agents = []
    if roles & {"network", "compute"}:
        agents.append(f"neutron-{values['mechanism']}-agent")
    if "network" in roles:
        agents += ["neutron-dhcp-agent", "neutron-metadata-agent"]
        if values["network_option"] == "self-service":
            agents.append("neutron-l3-agent")
    return agents


def compare(expected: dict[str, list[str]], listed: list[dict[str, Any]]) -> list[AgentCheck]:
    """Each expected (host, binary) against Neutron's list (dicts with host, binary, alive)."""
    seen = {(a["host"], a["binary"]): bool(a["alive"]) for a in listed}
    checks = []
    for host in sorted(expected):
        for binary in expected[host]:
            alive = seen.get((host, binary))
            if alive:
                checks.append(AgentCheck(host, binary, "alive"))
            else:
                state = "missing" if alive is None else "dead"
                what = "never registered" if alive is None else "registered, but stopped reporting"
                checks.append(AgentCheck(host, binary, state, f"{what}: {HINTS.get(binary, '')}"))
    return checks


class NeutronClient:
    """The few calls the coordinator makes to the Neutron API, through openstacksdk."""

    def __init__(self, cloud: str, clouds_yaml: str = ""):
        # openstacksdk is imported here: commands that never talk to Neutron do not pay for it.
        import openstack.config
        import openstack.connection

        files = [clouds_yaml] if clouds_yaml else None
        region = openstack.config.OpenStackConfig(config_files=files).get_one(cloud=cloud)
        self.connection = openstack.connection.Connection(config=region)

    def agents(self) -> list[dict[str, Any]]:
        return [{"host": a.host, "binary": a.binary, "alive": a.is_alive, "type": a.agent_type}
                for a in self.connection.network.agents()]

    def extensions(self) -> list[str]:
        return sorted(e.alias for e in self.connection.network.extensions())


def client(conf: cfg.ConfigOpts) -> NeutronClient | None:
    """The configured Neutron, or None when verification is off."""
    group = conf.neutron
    return NeutronClient(group.cloud, group.clouds_yaml) if group.cloud else None


class AgentWatch:
    """Turns repeated looks at Neutron into alerts: an expected agent not alive for ``timeout`` seconds, once."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.since: dict[tuple[str, str], float] = {}
        self.alerted: set[tuple[str, str]] = set()

    def update(self, checks: list[AgentCheck], now: float) -> tuple[list[AgentCheck], list[AgentCheck]]:
        """(newly overdue, newly recovered) among ``checks``."""
        overdue, recovered = [], []
        current = {(c.host, c.binary) for c in checks}
        for key in list(self.since):
            if key not in current:  # no longer expected (role removed)
                self.since.pop(key)
                self.alerted.discard(key)
        for check in checks:
            key = (check.host, check.binary)
            if check.ok:
                self.since.pop(key, None)
                if key in self.alerted:
                    self.alerted.discard(key)
                    recovered.append(check)
                continue
            first = self.since.setdefault(key, now)
            if now - first >= self.timeout and key not in self.alerted:
                self.alerted.add(key)
                overdue.append(check)
        return overdue, recovered


class Verifier:
    """The coordinator's side of the check: expected agents from the inventory, alive ones from Neutron.

    ``checks`` answers ``nodeagentctl verify`` and the node list's Neutron column; ``tick``, called by
    the serve loop, looks every ``check_interval`` and raises an alert for an agent overdue.
    """

    def __init__(self, conf: cfg.ConfigOpts, inventory: Inventory, notices: Notices):
        self.conf = conf
        self.inventory = inventory
        self.notices = notices
        group = conf.neutron
        self.watch = AgentWatch(group.agent_alive_timeout)
        self.interval = group.check_interval
        self._client: NeutronClient | None = None
        self._next = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.conf.neutron.cloud)

    @property
    def neutron(self) -> NeutronClient:
        if self._client is None:
            self._client = client(self.conf)
        return self._client

    def expected(self, host: str | None = None, applied_only: bool = False) -> dict[str, list[str]]:
        """Agents per node from its roles; ``applied_only``: only nodes that finished applying them."""
        nodes = [n for n in self.inventory.nodes()
                 if n.roles and n.enrolment == "accepted" and host in (None, n.name)
                 and (not applied_only or (n.status or {}).get("reconciled_generation", 0) >= n.desired_generation)]
        return {n.name: expected_agents(n.roles, self.inventory.variables(n.name)) for n in nodes}

    def checks(self, host: str | None = None, applied_only: bool = False) -> list[AgentCheck]:
        return compare(self.expected(host, applied_only), self.neutron.agents())

    def missing_extensions(self) -> list[str]:
        option = self.inventory.variables().get("network_option", DEFAULTS["network_option"])
        have = set(self.neutron.extensions())
        return [alias for alias in REQUIRED_EXTENSIONS.get(option, ()) if alias not in have]

    def tick(self, now: float) -> None:
        if not self.enabled or now < self._next:
            return
        self._next = now + self.interval
        try:  # the alert clock of an agent starts once its node has applied the roles that run it
            checks = self.checks(applied_only=True)
        except Exception as exc:  # Neutron unreachable: said once per look, the fleet keeps being served
            LOG.warning("cannot ask Neutron which agents are alive: %s", exc)
            self._client = None
            return
        overdue, recovered = self.watch.update(checks, now)
        for check in overdue:
            detail = (f"{check.binary} is {check.state} in Neutron {self.watch.timeout:.0f} s after it was "
                      f"expected ({check.hint})")
            LOG.warning("node %s: %s", check.host, detail)
            self.inventory.add_event(check.host, "neutron.agent.dead", detail)
            payload = {"node": check.host, "binary": check.binary, "state": check.state, "hint": check.hint}
            self.notices.notify("nodeagent.neutron.agent_dead", payload)
            self.notices.alert({"type": "nodeagent.neutron.agent_dead", **payload})
        for check in recovered:
            self.inventory.add_event(check.host, "neutron.agent.alive", f"{check.binary} is alive again")
