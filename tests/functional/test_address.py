"""The address driver against the real kernel and a real userspace Open vSwitch, in a namespace the test made.

The case that matters: on the userspace datapath the tunnel endpoint moves from the overlay NIC onto a netdev
bridge (br-phy) and the node is never without it: the roles' three resources, in their order.
"""

from __future__ import annotations

import json

import pytest

from nodeagent.kit.errors import InvalidDocument
from nodeagent.document.model import parse_document
from nodeagent.kit.result import Status
from nodeagent.node.engine import Engine
from tests.conftest import lab_context
from tests.functional.helpers import EventSink, details, reconcile, watching

ADDRESS = {"id": "addr", "driver": "address", "interface": "eth2", "address": "198.18.9.31/24"}
MOVE = [  # as etc/roles/_agent_common.yaml.j2 renders it for datapath_type netdev
    {"id": "overlay-bridge", "driver": "ovs_bridge", "name": "br-phy", "datapath_type": "netdev", "ports": ["eth2"]},
    {"id": "overlay-address", "driver": "address", "interface": "br-phy", "address": "198.18.9.31/24", "link": "up",
     "purge": True, "after": ["overlay-bridge"]},
    {"id": "overlay-address-off-nic", "driver": "address", "interface": "eth2", "address": "198.18.9.31/24",
     "state": "absent", "after": ["overlay-address"]},
]


@pytest.fixture
def engine(lab, registry):
    return Engine(registry, lab_context(lab))


def addresses(lab, name: str) -> list[str]:
    found = json.loads(lab.exec("ip", "-4", "-j", "addr", "show", "dev", name).stdout)
    return [f"{a['local']}/{a['prefixlen']}" for link in found for a in link["addr_info"]]


def test_an_address_is_added_kept_and_removed(lab, engine):
    assert reconcile(engine, ADDRESS)["addr"].status is Status.CHANGED
    assert addresses(lab, "eth2") == ["198.18.9.31/24"]
    assert reconcile(engine, ADDRESS)["addr"].status is Status.IN_SYNC

    lab.exec("ip", "addr", "del", "198.18.9.31/24", "dev", "eth2")
    assert details(reconcile(engine, ADDRESS, dry_run=True)["addr"]) == ["address: (absent) → 198.18.9.31/24"]
    assert reconcile(engine, ADDRESS)["addr"].status is Status.CHANGED
    # the same address with another prefix length is replaced; other addresses are left alone
    lab.exec("ip", "addr", "del", "198.18.9.31/24", "dev", "eth2")
    lab.exec("ip", "addr", "add", "198.18.9.31/16", "dev", "eth2")
    lab.exec("ip", "addr", "add", "198.18.9.99/24", "dev", "eth2")
    assert details(reconcile(engine, ADDRESS, dry_run=True)["addr"]) == [
        "address: 198.18.9.31/16 → 198.18.9.31/24"]
    assert reconcile(engine, ADDRESS)["addr"].status is Status.CHANGED
    assert sorted(addresses(lab, "eth2")) == ["198.18.9.31/24", "198.18.9.99/24"]

    absent = {**ADDRESS, "state": "absent"}
    assert reconcile(engine, absent)["addr"].status is Status.CHANGED
    assert addresses(lab, "eth2") == ["198.18.9.99/24"]
    assert reconcile(engine, absent)["addr"].status is Status.IN_SYNC


def test_purge_leaves_only_the_address_even_one_of_the_same_subnet(lab, engine):
    owned = {**ADDRESS, "purge": True}
    lab.exec("ip", "addr", "add", "198.18.9.30/24", "dev", "eth2")  # the old endpoint: primary of the subnet
    lab.exec("ip", "addr", "add", "198.18.10.1/24", "dev", "eth2")
    assert sorted(details(reconcile(engine, owned, dry_run=True)["addr"])) == [
        "address: (absent) → 198.18.9.31/24", "address: 198.18.10.1/24 → (absent)",
        "address: 198.18.9.30/24 → (absent)"]
    assert reconcile(engine, owned)["addr"].status is Status.CHANGED
    assert addresses(lab, "eth2") == ["198.18.9.31/24"]
    assert reconcile(engine, owned)["addr"].status is Status.IN_SYNC


def test_a_missing_interface_fails_naming_it_and_absent_is_then_in_sync(lab, engine):
    missing = {**ADDRESS, "interface": "eth7"}
    result = reconcile(engine, missing)["addr"]
    assert result.status is Status.FAILED and "interface eth7 not found" in result.error, result
    assert reconcile(engine, {**missing, "state": "absent"})["addr"].status is Status.IN_SYNC


def test_the_tunnel_endpoint_moves_onto_a_netdev_bridge_and_is_never_missing(lab, engine):
    lab.exec("ip", "addr", "add", "198.18.9.31/24", "dev", "eth2")
    results = reconcile(engine, *MOVE)
    assert {k: r.status for k, r in results.items()} == {k: Status.CHANGED for k in results}, results
    assert addresses(lab, "br-phy") == ["198.18.9.31/24"] and addresses(lab, "eth2") == []
    assert "UP" in json.loads(lab.exec("ip", "-j", "link", "show", "br-phy").stdout)[0]["flags"]
    # OVS's own routing table (what native tunnels use) now routes the overlay through the bridge
    route = lab.exec("ovs-appctl", "-t", str(lab.directory / "ovs-vswitchd.ctl"), "ovs/route/lookup",
                     "198.18.9.21").stdout
    assert "dev br-phy" in route, route
    assert {r.status for r in reconcile(engine, *MOVE).values()} == {Status.IN_SYNC}


def test_the_edges_decide_the_order_of_the_move_not_the_listing(lab, engine):
    # Whatever order the document lists them in, the 'after' edges decide: the NIC keeps its address until the
    # bridge has it (the resource that takes it away runs last).
    lab.exec("ip", "addr", "add", "198.18.9.31/24", "dev", "eth2")
    results = reconcile(engine, *reversed(MOVE))
    assert list(results) == ["overlay-bridge", "overlay-address", "overlay-address-off-nic"]
    assert addresses(lab, "br-phy") == ["198.18.9.31/24"]


def test_removing_the_address_is_noticed_at_once(lab, registry):
    ctx = lab_context(lab)
    driver = registry.get("address")
    spec = driver.validate({k: v for k, v in ADDRESS.items() if k not in ("id", "driver")})
    lab.exec("ip", "addr", "add", "198.18.9.31/24", "dev", "eth2")
    sink = EventSink()
    with watching(driver, {"addr": spec}, ctx, sink):
        sink.drain()
        lab.exec("ip", "addr", "del", "198.18.9.31/24", "dev", "eth2")
        assert sink.wait_for("addr"), "no event for the removed address"


@pytest.mark.parametrize("spec, message", [
    ({"address": "198.18.9.31"}, "field 'address' must be an IPv4 address with its prefix length"),
    ({"address": "198.18.9.0/24"}, "field 'address' must be an IPv4 address with its prefix length"),
    ({"address": "fe80::1/64"}, "field 'address' must be an IPv4 address with its prefix length"),
    ({"interface": "a" * 16}, "field 'interface' must be an interface name (at most 15 characters)"),
    ({"link": "down"}, "field 'link' must be 'up'"),
    ({"state": "absent", "link": "up"}, "field 'link' is only for a present address"),
    ({"state": "absent", "purge": True}, "field 'purge' is only for a present address"),
    ({"purge": "yes"}, "field 'purge' must be true or false"),
    ({"state": "gone"}, "field 'state' must be one of"),
])
def test_bad_input_is_refused_naming_the_field(registry, spec, message):
    with pytest.raises(InvalidDocument) as caught:
        parse_document({"node": "n", "generation": 1, "resources": [{**ADDRESS, **spec}]}, registry)
    assert "resource 'addr'" in str(caught.value) and message in str(caught.value), str(caught.value)
