"""The two-node guide (Linux bridge + VXLAN, 2024.2: neutron-server 25) judged by the real Neutron, both options.

One deployment serves both options: each test asks for its option (one variable; the roles follow), so the
tests also show a site moving from option 1 to option 2 and back.

Option 1 (provider networks): the controller runs the server, the Linux bridge, DHCP and metadata agents, no
L3 agent; a stand-in VM on the compute node gets its address from the DHCP agent over the provider network
and pings the DHCP port. Option 2 (self-service): plus the L3 agent; the VM is on a VXLAN network and pings
its router across the overlay.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from nodeagent.testing import labguide
from nodeagent.testing.waiting import wait_until
from nodeagent.testing.labguide import Deployment, deployed
from tests.functional.test_real_neutron import healthy, in_node

pytestmark = pytest.mark.timeout(1200)
_vms = itertools.count()
UDHCPC_SCRIPT = """#!/bin/sh
# busybox udhcpc calls this with the lease in its environment: configure the stand-in VM's NIC.
case "$1" in bound|renew) ip addr add "$ip/$mask" dev "$interface" ;; esac
"""


@pytest.fixture(scope="module")
def two_node(tmp_path_factory):
    with deployed(tmp_path_factory.mktemp("two-node"), labguide.two_node("provider")) as deployment:
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

    def __init__(self, deployment: Deployment, host: str, network_id: str):
        self.deployment, self.host = deployment, host
        neutron = deployment.neutron.connection.network
        self.port = neutron.create_port(network_id=network_id, device_owner="compute:nova",
                                        device_id=str(uuid.uuid4()), binding_host_id=host)
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
        """Ask the DHCP agent's dnsmasq for an address; returns the address the VM configured."""
        def leased():
            self.exec("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "3", "-T", "2", "-s", str(script))
            return self.exec("ip", "-4", "-o", "addr", "show", "eth0").stdout.split()[3:4]
        return wait_until(leased, 180, "a DHCP lease")[0].split("/")[0]

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        self.deployment.neutron.connection.network.delete_port(self.port)


@pytest.mark.parametrize("option", ["provider", "self-service"])
def test_a_stand_in_vm_gets_its_address_from_dhcp_and_reaches_its_gateway(two_node, option, tmp_path):
    use_option(two_node, option)
    network = two_node.neutron.connection.network
    if option == "provider":
        net = network.create_network(name="provider", provider_network_type="flat",
                                     provider_physical_network="provider", is_router_external=True)
    else:
        net = network.create_network(name="selfservice")
    vm = router = subnet = None
    try:
        subnet = network.create_subnet(network_id=net.id, ip_version=4, cidr="198.19.30.0/24",
                                       gateway_ip="198.19.30.1", name=net.name)
        if option == "self-service":
            router = network.create_router(name="router")
            network.add_interface_to_router(router, subnet_id=subnet.id)
            target = "198.19.30.1"  # the router's interface, in its qrouter namespace on the controller
            wait_until(lambda: f"qrouter-{router.id}" in in_node(two_node, "controller", "ip", "netns").stdout,
                     120, "the router's namespace")
        dhcp_port = wait_until(lambda: next((p for p in network.ports(network_id=net.id, device_owner="network:dhcp")
                                           if p.status == "ACTIVE"), None), 120, "an ACTIVE DHCP port")
        if option == "provider":
            target = dhcp_port.fixed_ips[0]["ip_address"]
        vm = StandInVM(two_node, "compute1", net.id)
        script = tmp_path / "udhcpc.sh"
        script.write_text(UDHCPC_SCRIPT)
        script.chmod(0o755)
        address = vm.dhcp(script)
        assert address == vm.port.fixed_ips[0]["ip_address"]  # the address Neutron gave the port
        ping = wait_until(lambda: (lambda done: done if done.returncode == 0 else None)(
            vm.exec("ping", "-c", "1", "-W", "2", target)), 60, f"ping {target}")
        assert "1 received" in ping.stdout
    finally:
        if vm is not None:
            vm.remove()
        if router is not None:
            network.remove_interface_from_router(router, subnet_id=subnet.id)
            network.delete_router(router)
        network.delete_network(net)


def test_verify_traffic_plugs_stand_ins_into_the_linux_bridges_and_they_reach_each_other(two_node):
    # the same probe as the three-node guide's, plugged as os-vif plugs a VM with the Linux bridge agent (brq)
    use_option(two_node, "self-service")
    program = Path(sys.executable).parent / "nodeagentctl"
    done = subprocess.run([str(program), "--config-file", str(two_node.fleet.coordinator_conf), "verify",
                           "--traffic", "-f", "json"], capture_output=True, text=True, timeout=300)
    rows = json.loads(done.stdout or "[]")
    assert done.returncode == 0, rows or done.stderr
    assert {(r["Host"], r["Check"]) for r in rows} == {
        (host, check) for host in ("compute1", "controller") for check in ("dhcp", "ping dhcp port", "ping router")
    } | {("compute1", "ping controller's instance"), ("controller", "ping compute1's instance")}, rows
    # VXLAN: Neutron's network MTU (1450) is what dnsmasq gives the instances
    assert {r["Target"].split(" mtu ")[1] for r in rows if r["Check"] == "dhcp"} == {"1450"}, rows
