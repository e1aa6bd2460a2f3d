"""The two-node guide (Linux bridge + VXLAN, a 2024.2 deployment) from roles: a controller that also
runs the network agents, and a compute node."""

from __future__ import annotations

import json

import pytest

from tests.functional.test_fleet import wait_until
from tests.functional.test_roles_e2e import SECRETS, active, converged, ini, role_fleet

NODES = {"controller": ("198.18.4.11/24", ["controller", "network"],
                        ["neutron-server", "nova-api", "nova-scheduler", "nova-conductor", "neutron-linuxbridge-agent",
                         "neutron-l3-agent",
                         "neutron-dhcp-agent", "neutron-metadata-agent"]),
         "compute1": ("198.18.4.31/24", ["compute"], ["neutron-linuxbridge-agent", "nova-compute"])}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    yield from role_fleet(tmp_path_factory.mktemp("twonode"),
                          {host: (address, services) for host, (address, _, services) in NODES.items()})


def test_the_two_node_guide_is_refused_for_2025_1_then_converges_for_2024_2(fleet):
    for key, value in SECRETS.items():
        fleet.ctl("secret", "set", key, stdin=value + "\n")
    for key, value in (("manage_database", "false"), ("manage_keystone", "false"), ("overlay", "vxlan")):
        fleet.ctl("var", "set", key, value)
    for host in NODES:
        fleet.ctl("var", "set", "--node", host, "overlay_interface", "eth1")
        fleet.ctl("var", "set", "--node", host, "provider_interface", "eth2")
    fleet.ctl("var", "set", "mechanism", "linuxbridge", check=False)  # nothing assigned yet: stored
    done = fleet.ctl("node", "assign", "compute1", "compute", check=False)
    assert done.returncode == 1 and "was removed from Neutron in 2025.1" in done.stderr
    fleet.ctl("var", "set", "openstack_release", "2024.2")
    for host, (_, roles, _) in NODES.items():
        fleet.ctl("node", "assign", host, *roles)
    wait_until(lambda: converged(fleet, "1/1"), timeout=60)

    neutron = ini(fleet, "controller", "/etc/neutron/neutron.conf")
    assert not neutron.has_option("DEFAULT", "allow_overlapping_ips")  # removed in Zed
    assert neutron.get("experimental", "linuxbridge") == "true"
    assert neutron.get("DEFAULT", "notify_nova_on_port_status_changes") == "true"
    ml2 = ini(fleet, "controller", "/etc/neutron/plugins/ml2/ml2_conf.ini")
    assert ml2.get("ml2", "type_drivers") == "flat,vlan,vxlan"
    assert ml2.get("ml2", "mechanism_drivers") == "linuxbridge,l2population"
    assert ml2.get("ml2", "extension_drivers") == "port_security"
    assert ml2.get("ml2_type_flat", "flat_networks") == "provider"
    assert ml2.get("ml2_type_vxlan", "vni_ranges") == "1:1000"
    for host, address in (("controller", "198.18.4.11"), ("compute1", "198.18.4.31")):
        agent = ini(fleet, host, "/etc/neutron/plugins/ml2/linuxbridge_agent.ini")
        assert agent.get("linux_bridge", "physical_interface_mappings") == "provider:eth2"
        assert (agent.get("vxlan", "enable_vxlan"), agent.get("vxlan", "local_ip")) == ("true", address)
        assert agent.get("securitygroup", "firewall_driver") == "iptables"
    assert ini(fleet, "controller", "/etc/neutron/dhcp_agent.ini").get("DEFAULT", "interface_driver") == "linuxbridge"
    for host, (_, _, services) in NODES.items():
        for service in services:
            assert active(fleet, host, service) == ("active", "enabled"), (host, service)
    assert json.loads(fleet.ctl("node", "list", "-f", "json").stdout)[0]["Roles"] in ("compute", "controller, network")
