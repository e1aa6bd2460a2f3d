"""linux_bridge against the real kernel, inside a namespace the test made."""

from __future__ import annotations

import pytest

from nodeagent.node.engine import Engine
from nodeagent.kit.errors import InvalidDocument
from nodeagent.kit.result import Status
from tests.conftest import lab_context
from tests.functional.helpers import EventSink, watching, details, reconcile

BRIDGE = {"id": "provider", "driver": "linux_bridge", "name": "brq-prov", "ports": ["eth2"], "mtu": 1400}
VXLAN = {"id": "overlay", "driver": "linux_bridge", "kind": "vxlan", "name": "vxlan-100", "vni": 100,
         "local": "198.18.5.1", "device": "eth2", "learning": False}


@pytest.fixture
def engine(lab, registry):
    return Engine(registry, lab_context(lab))


def link_json(lab, name):
    import json
    found = lab.exec("ip", "-d", "-j", "link", "show", name, check=False)
    return json.loads(found.stdout)[0] if found.returncode == 0 else None


def test_bridge_created_then_in_sync_then_each_drift_fixed(lab, engine):
    first = reconcile(engine, BRIDGE)["provider"]
    assert first.status is Status.CHANGED, first
    link = link_json(lab, "brq-prov")
    assert link["mtu"] == 1400 and "UP" in link["flags"]
    assert link_json(lab, "eth2")["master"] == "brq-prov"
    assert reconcile(engine, BRIDGE)["provider"].status is Status.IN_SYNC

    for command, expected in [
        (("ip", "link", "set", "brq-prov", "down"), ["state: down → up"]),
        (("ip", "link", "set", "eth2", "nomaster"), ["ports.eth2: (absent) → attached"]),
        (("ip", "link", "set", "brq-prov", "mtu", "1500"), ["mtu: 1500 → 1400"]),
    ]:
        lab.exec(*command)
        planned = reconcile(engine, BRIDGE, dry_run=True)["provider"]
        assert planned.status is Status.PENDING and details(planned) == expected, command
        assert reconcile(engine, BRIDGE)["provider"].status is Status.CHANGED
        assert reconcile(engine, BRIDGE)["provider"].status is Status.IN_SYNC

    lab.exec("ip", "link", "del", "brq-prov")
    assert details(reconcile(engine, BRIDGE, dry_run=True)["provider"])[0] == "link: (absent) → bridge brq-prov"
    assert reconcile(engine, BRIDGE)["provider"].status is Status.CHANGED
    assert link_json(lab, "eth2")["master"] == "brq-prov"

    gone = reconcile(engine, {**BRIDGE, "state": "absent"})["provider"]
    assert gone.status is Status.CHANGED and link_json(lab, "brq-prov") is None
    assert reconcile(engine, {**BRIDGE, "state": "absent"})["provider"].status is Status.IN_SYNC


def test_other_ports_are_left_unless_purged(lab, engine):
    lab.add_nic("tap9")
    reconcile(engine, BRIDGE)
    lab.exec("ip", "link", "set", "tap9", "master", "brq-prov")
    assert reconcile(engine, BRIDGE)["provider"].status is Status.IN_SYNC
    purged = reconcile(engine, {**BRIDGE, "purge_ports": True})["provider"]
    assert details(purged) == ["ports.tap9: attached → (absent)"] and purged.status is Status.CHANGED
    assert "master" not in link_json(lab, "tap9")


def test_vxlan_created_fixed_and_recreated_when_its_identity_changes(lab, engine):
    bridge = {**BRIDGE, "ports": ["vxlan-100"], "after": ["overlay"]}
    results = reconcile(engine, VXLAN, bridge)
    assert results["overlay"].status is Status.CHANGED and results["provider"].status is Status.CHANGED
    info = link_json(lab, "vxlan-100")["linkinfo"]["info_data"]
    assert (info["id"], info["local"], info["link"], info["port"], info["learning"]) == (
        100, "198.18.5.1", "eth2", 4789, False)
    assert link_json(lab, "vxlan-100")["master"] == "brq-prov"
    assert {r.status for r in reconcile(engine, VXLAN, bridge).values()} == {Status.IN_SYNC}

    lab.exec("ip", "link", "del", "vxlan-100")
    results = reconcile(engine, VXLAN, bridge)
    assert results["overlay"].status is Status.CHANGED and results["provider"].status is Status.CHANGED
    assert link_json(lab, "vxlan-100")["master"] == "brq-prov"

    changed = reconcile(engine, {**VXLAN, "vni": 200})["overlay"]
    assert details(changed) == ["vni: 100 → 200"] and changed.status is Status.CHANGED
    assert link_json(lab, "vxlan-100")["linkinfo"]["info_data"]["id"] == 200


def test_missing_port_is_named_and_nothing_is_created(lab, engine):
    failed = reconcile(engine, {**BRIDGE, "ports": ["eth2", "eth7"]})["provider"]
    assert failed.status is Status.FAILED
    assert failed.error == f"interface eth7 not found in network namespace '{lab.name}'"
    assert link_json(lab, "brq-prov") is None


def test_a_link_of_another_kind_is_not_replaced(lab, engine):
    failed = reconcile(engine, {**BRIDGE, "name": "eth2", "ports": []})["provider"]
    assert failed.status is Status.FAILED
    assert "interface eth2 exists" in failed.error and "as a veth link, not a bridge" in failed.error
    assert link_json(lab, "eth2")["linkinfo"]["info_kind"] == "veth"


@pytest.mark.parametrize("change, message", [
    ({"name": "brq-much-too-long-name"}, "field 'name' must be an interface name (at most 15 characters)"),
    ({"ports": "eth2,eth3"}, "field 'ports' must be a list of interface names, got 'eth2,eth3'"),
    ({"ports": ["eth 2"]}, "field 'ports' must be a list of interface names, got 'eth 2'"),
    ({"mtu": 20}, "field 'mtu' must be an integer from 68 to 65535, got 20"),
    ({"vni": 5}, "field 'vni' is not known to driver 'linux_bridge'"),
])
def test_bad_input_is_refused(engine, change, message):
    with pytest.raises(InvalidDocument) as caught:
        reconcile(engine, {**BRIDGE, **change})
    assert str(caught.value) == f"resource 'provider': {message}" or message in str(caught.value)


def test_vxlan_bad_input(engine):
    with pytest.raises(InvalidDocument, match=r"field 'vni' must be an integer from 1 to 16777215"):
        reconcile(engine, {**VXLAN, "vni": 0})
    with pytest.raises(InvalidDocument, match=r"field 'local' must be an IPv4 address, got '198.18.5'"):
        reconcile(engine, {**VXLAN, "local": "198.18.5"})


def test_watch_reports_each_out_of_band_change(lab, engine, registry):
    bridge = {**BRIDGE, "ports": ["eth2", "vxlan-100"], "after": ["overlay"]}
    reconcile(engine, VXLAN, bridge)
    driver = registry.get("linux_bridge")
    specs = {"provider": driver.validate({k: v for k, v in bridge.items() if k not in ("id", "driver", "after")}),
             "overlay": driver.validate({k: v for k, v in VXLAN.items() if k not in ("id", "driver")})}
    sink = EventSink()
    with watching(driver, specs, engine.ctx, sink):
        for command, resource_id in [
            (("ip", "link", "set", "brq-prov", "down"), "provider"),
            (("ip", "link", "set", "eth2", "nomaster"), "provider"),
            (("ip", "link", "set", "vxlan-100", "down"), "overlay"),
            (("ip", "link", "del", "vxlan-100"), "overlay"),
            (("ip", "link", "del", "brq-prov"), "provider"),
        ]:
            sink.drain()
            lab.exec(*command)
            assert sink.wait_for(resource_id), f"no event for {resource_id} after {' '.join(command)}"
