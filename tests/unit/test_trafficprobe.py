"""Which nodes 'verify --traffic' probes, and what it refuses before it makes anything."""

from __future__ import annotations

import pytest

from nodeagent.fleet.trafficprobe import ProbeError, choose_nodes, metadata_hop

ACCESS = {"probe_access": "ssh root@x"}
FLEET = [("controller", ["controller"], {**ACCESS, "overlay": "gre"}),
         ("network1", ["network"], {**ACCESS, "overlay": "gre"}),
         ("compute1", ["compute"], {**ACCESS, "overlay": "gre"}),
         ("compute2", ["compute"], {"overlay": "gre"})]  # not opted in


def test_nodes_with_br_int_and_probe_access_get_a_stand_in_the_others_are_only_looked_at():
    probed, access, mtu = choose_nodes(FLEET, None, None, "198.19.254.0/24")
    assert probed == ["compute1", "network1"]
    assert sorted(access) == ["compute1", "controller", "network1"]
    assert mtu == 1454  # the guide's dhcp-option-force=26,1454 with GRE


def test_the_mtu_follows_the_overlay_and_instance_mtu_and_is_not_checked_on_an_operators_network():
    vxlan = [(name, roles, {**values, "overlay": "vxlan"}) for name, roles, values in FLEET]
    assert choose_nodes(vxlan, None, None, "198.19.254.0/24")[2] == 1450
    own = [(name, roles, {**values, "instance_mtu": "1400"}) for name, roles, values in FLEET]
    assert choose_nodes(own, None, None, "198.19.254.0/24")[2] == 1400
    assert choose_nodes(FLEET, None, "selfservice", "198.19.254.0/24")[2] is None


def test_one_node():
    assert choose_nodes(FLEET, "compute1", None, "198.19.254.0/24")[0] == ["compute1"]


@pytest.mark.parametrize("nodes, host, cidr, message", [
    (FLEET, "compute2", "198.19.254.0/24", "node 'compute2' cannot be probed: it needs the role network or compute "
                                           "and the variable probe_access"),
    (FLEET, "controller", "198.19.254.0/24", "node 'controller' cannot be probed"),
    (FLEET[3:], None, "198.19.254.0/24", "no node to probe: set probe_access"),
    (FLEET, None, "198.19.254.1/24", "--cidr must be an IPv4 network"),
    (FLEET, None, "fd00::/64", "--cidr must be an IPv4 network"),
])
def test_what_cannot_be_probed_is_refused_naming_what_to_set(nodes, host, cidr, message):
    with pytest.raises(ProbeError, match=message):
        choose_nodes(nodes, host, None, cidr)


@pytest.mark.parametrize("status, hop, hint", [
    (200, "", ""),
    (404, "", ""),  # Nova's answer for a stand-in that is no server: the proxy, agent and secret worked
    (403, "metadata secret", "metadata_proxy_shared_secret differs between metadata_agent.ini on network1"),
    (500, "metadata agent", "the metadata agent on network1 answered 500"),
    (None, "router namespace", "the metadata proxy (haproxy) in qrouter-r1 on network1"),
])
def test_the_metadata_answer_names_the_broken_hop(status, hop, hint):
    found = metadata_hop(status, "r1", "network1")
    assert found[0] == hop and hint in found[1]
