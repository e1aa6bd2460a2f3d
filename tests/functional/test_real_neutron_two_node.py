"""The two-node guide (Linux bridge + VXLAN, 2024.2: neutron-server 25) judged by the real Neutron, both options.

One deployment serves both options: each test asks for its option (one variable; the roles follow), so the
tests also show a site moving from option 1 to option 2 and back.

The provider network is the one the controller role makes from variables (flat, external, on every node's
eth2), and a namespace on the wire of the nodes' eth2 stands in for its upstream router, with no route beyond
its own subnets. Option 1 (provider networks): the controller runs the server, the Linux bridge, DHCP and
metadata agents, no L3 agent; a stand-in VM on the compute node gets its address from the DHCP agent over the
provider network, pings the DHCP port and the upstream router. Option 2 (self-service): plus the L3 agent; the
VM is on a VXLAN network and pings its router across the overlay; ``verify --traffic`` with the upstream router
as the outside: stand-ins on both nodes get the MTU Neutron gives VXLAN networks, reach each other, reach the
upstream router through SNAT, and the upstream router reaches each one's floating IP.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from nodeagent.testing import labguide
from nodeagent.testing.waiting import NotReached, wait_until
from nodeagent.testing.labguide import Deployment, deployed
from tests.functional.test_real_neutron import healthy, in_node

pytestmark = pytest.mark.timeout(1200)
_vms = itertools.count()
UDHCPC_SCRIPT = """#!/bin/sh
# busybox udhcpc calls this with the lease in its environment: configure the stand-in VM's NIC.
case "$1" in bound|renew) ip addr add "$ip/$mask" dev "$interface" ;; esac
"""


UPSTREAM = "198.19.67.1"  # the provider network's upstream router (the role's subnet has no DHCP)
PROVIDER = {"provider_network_cidr": "198.19.67.0/24", "provider_network_gateway": UPSTREAM,
            "provider_network_pool": "198.19.67.100-198.19.67.150"}
INSTANCES_UPSTREAM = "198.19.30.1"  # option 1: the upstream router on the instances' own subnet (with DHCP)


@pytest.fixture(scope="module")
def two_node(tmp_path_factory):
    guide = labguide.two_node("provider")
    # the provider network among the site's variables from the start: the controller's first reconcile makes it
    guide = replace(guide, variables={**guide.variables, **PROVIDER})
    with deployed(tmp_path_factory.mktemp("two-node"), guide) as deployment:
        deployment.upstream = deployment.add_upstream(f"{UPSTREAM}/24")
        subprocess.run(["ip", "netns", "exec", deployment.upstream, "ip", "addr", "add", f"{INSTANCES_UPSTREAM}/24",
                        "dev", "eth0"], check=True, capture_output=True)
        yield deployment


def use_option(deployment: Deployment, option: str) -> None:
    """The guide's option the test needs: the operator changes one variable; the roles follow (option 2 adds
    the router plugin, VXLAN tenant networks and the L3 agent); every agent of that option is alive."""
    if deployment.variables().get("network_option") != option:
        deployment.set_variable("network_option", option)
    healthy(deployment)


def expected(option: str) -> list[tuple[str, str]]:
    l3 = [("controller", "neutron-l3-agent")] if option == "self-service" else []
    return sorted([("compute1", "neutron-linuxbridge-agent"), ("controller", "neutron-dhcp-agent"),
                   ("controller", "neutron-linuxbridge-agent"), ("controller", "neutron-metadata-agent"), *l3])


@pytest.mark.parametrize("option", ["provider", "self-service"])
def test_every_agent_of_the_option_alive_in_neutron(two_node, option):
    use_option(two_node, option)
    checks = healthy(two_node)
    assert sorted((c.host, c.binary) for c in checks) == expected(option)
    units = subprocess.run([*two_node.fleet.systemds["controller"].systemctl, "is-active", "neutron-server"],
                           capture_output=True, text=True).stdout.strip()
    assert units == "active"  # 2024.2 still ships the one neutron-server


class StandInVM:
    """A namespace plugged into a compute node as Nova plugs a VM with the Linux bridge agent: a tap (veth) on
    the network's brq bridge, the VM's NIC at the other end with the port's MAC address."""

    def __init__(self, deployment: Deployment, host: str, network_id: str, subnet_id: str):
        self.deployment, self.host = deployment, host
        neutron = deployment.neutron.connection.network
        self.port = neutron.create_port(network_id=network_id, device_owner="compute:nova",
                                        device_id=str(uuid.uuid4()), binding_host_id=host,
                                        fixed_ips=[{"subnet_id": subnet_id}])
        self.name = f"na{os.getpid() % 100000}vm{next(_vms)}"
        self.tap = f"tap{self.port.id[:11]}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        node = deployment.fleet.nodes[host]
        node.exec("ip", "link", "add", self.tap, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        node.exec("ip", "link", "set", self.tap, "up")
        # the agent makes brq<network> once it sees the port's tap; libvirt, not the agent, enslaves the tap
        bridge = f"brq{network_id[:11]}"
        wait_until(lambda: node.exec("ip", "link", "set", self.tap, "master", bridge, check=False).returncode == 0,
                 120, f"{bridge} on {host}")
        self.exec("ip", "link", "set", "lo", "up")
        self.exec("ip", "link", "set", "eth0", "address", self.port.mac_address, "mtu", "1450", "up")

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *command], capture_output=True, text=True,
                              timeout=120)

    def dhcp(self, script) -> str:
        """Ask the DHCP agent's dnsmasq for an address; returns the address the VM configured.

        Only the data path is waited for (the tap in its bridge, dnsmasq's host entry), up to 300 s: a loaded
        whole run once needed more than 180 s. Neutron's port status is not required (a whole run once saw the
        port stay DOWN for 300 s, the L2 agent having never reported it up); it is named if no lease comes."""
        def leased():
            self.exec("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "3", "-T", "2", "-s", str(script))
            return self.exec("ip", "-4", "-o", "addr", "show", "eth0").stdout.split()[3:4]
        try:
            return wait_until(leased, 300, "a DHCP lease")[0].split("/")[0]
        except NotReached as exc:
            status = self.deployment.neutron.connection.network.get_port(self.port.id).status
            raise NotReached(f"{exc} (port {self.port.id} on {self.host}: {status})") from None

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        self.deployment.neutron.connection.network.delete_port(self.port)


@pytest.mark.parametrize("option", ["provider", "self-service"])
def test_a_stand_in_vm_gets_its_address_from_dhcp_and_reaches_its_gateway(two_node, option, tmp_path):
    use_option(two_node, option)
    network = two_node.neutron.connection.network
    router = subnet = net = vm = None
    try:
        if option == "provider":
            # the guide's provider network is the role's; instances get a subnet of their own on it, with DHCP,
            # whose gateway is the upstream router
            net = network.find_network("provider", ignore_missing=False)
            subnet = network.create_subnet(network_id=net.id, ip_version=4, cidr="198.19.30.0/24",
                                           gateway_ip=INSTANCES_UPSTREAM, allocation_pools=[
                                               {"start": "198.19.30.100", "end": "198.19.30.150"}], name="instances")
        else:
            net = network.create_network(name="selfservice")
            subnet = network.create_subnet(network_id=net.id, ip_version=4, cidr="198.19.30.0/24",
                                           gateway_ip="198.19.30.1", name=net.name)
            router = network.create_router(name="router")
            network.add_interface_to_router(router, subnet_id=subnet.id)
            wait_until(lambda: f"qrouter-{router.id}" in in_node(two_node, "controller", "ip", "netns").stdout,
                       120, "the router's namespace")
        dhcp_port = wait_until(lambda: next((p for p in network.ports(network_id=net.id, device_owner="network:dhcp")
                                             if p.status == "ACTIVE"), None), 120, "an ACTIVE DHCP port")
        # option 1: the DHCP port, then the upstream router; option 2: the router's interface, in its qrouter
        # namespace on the controller, across VXLAN
        targets = ([dhcp_port.fixed_ips[0]["ip_address"], INSTANCES_UPSTREAM] if option == "provider"
                   else ["198.19.30.1"])
        vm = StandInVM(two_node, "compute1", net.id, subnet.id)
        script = tmp_path / "udhcpc.sh"
        script.write_text(UDHCPC_SCRIPT)
        script.chmod(0o755)
        address = vm.dhcp(script)
        assert address == vm.port.fixed_ips[0]["ip_address"]  # the address Neutron gave the port
        for target in targets:
            ping = wait_until(lambda: (lambda done: done if done.returncode == 0 else None)(
                vm.exec("ping", "-c", "1", "-W", "2", target)), 60, f"ping {target}")
            assert "1 received" in ping.stdout
    finally:
        if vm is not None:
            vm.remove()
        if router is not None:
            network.remove_interface_from_router(router, subnet_id=subnet.id)
            network.delete_router(router)
        if option == "provider":
            if subnet is not None:
                network.delete_subnet(subnet)
        elif net is not None:
            network.delete_network(net)


def test_the_provider_network_is_the_roles(two_node):
    healthy(two_node)
    network = two_node.neutron.connection.network
    [provider] = [n for n in network.networks() if n.name == "provider"]
    assert (provider.is_router_external, provider.provider_network_type, provider.provider_physical_network) == (
        True, "flat", "provider")
    subnets = [(s.cidr, s.gateway_ip, s.is_dhcp_enabled) for s in network.subnets(network_id=provider.id)]
    assert ("198.19.67.0/24", UPSTREAM, False) in subnets, subnets


def test_verify_traffic_stand_ins_reach_each_other_and_the_outside_through_the_linux_bridges(two_node):
    # the same probe as the three-node guide's, plugged as os-vif plugs a VM with the Linux bridge agent (brq);
    # the throw-away router's gateway is on the role's provider network: the L3 agent's qg- port in the
    # controller's brq bridge of that network, whose port is eth2, on the upstream router's wire
    use_option(two_node, "self-service")
    # the upstream router knows only its own subnets: a reply reaches an instance only through SNAT or its FIP
    assert "default" not in subprocess.run(["ip", "netns", "exec", two_node.upstream, "ip", "route"],
                                           capture_output=True, text=True).stdout
    program = Path(sys.executable).parent / "nodeagentctl"
    done = subprocess.run([str(program), "--config-file", str(two_node.fleet.coordinator_conf), "verify",
                           "--traffic", "-f", "json", "--outside-access", f"ip netns exec {two_node.upstream}"],
                          capture_output=True, text=True, timeout=300)
    rows = json.loads(done.stdout or "[]")
    assert done.returncode == 0, "\n".join(str(r) for r in rows if r["Result"] != "ok") or done.stderr
    checks = ("dhcp", "ping dhcp port", "ping router", "ping router gateway", "ping outside (SNAT)",
              "floating ip from the outside")
    assert {(r["Host"], r["Check"]) for r in rows} == {
        (host, check) for host in ("compute1", "controller") for check in checks
    } | {("compute1", "ping controller's instance"), ("controller", "ping compute1's instance")}, rows
    # VXLAN: Neutron's network MTU (1450) is what dnsmasq gives the instances (the guide sets no DHCP option)
    assert {r["Target"].split(" mtu ")[1] for r in rows if r["Check"] == "dhcp"} == {"1450"}, rows
    assert {r["Target"] for r in rows if r["Check"] == "ping outside (SNAT)"} == {UPSTREAM}, rows
    assert all(r["Target"].startswith("198.19.67.") for r in rows if r["Check"].startswith("floating ip")), rows
