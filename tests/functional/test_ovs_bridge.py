"""ovs_bridge against a real Open vSwitch (userspace datapath) running inside the test's namespace."""

from __future__ import annotations

import pytest

from nodeagent.node.engine import Engine
from nodeagent.kit.errors import InvalidDocument
from nodeagent.kit.result import Status
from nodeagent.testing.waiting import wait_until
from tests.conftest import lab_context
from tests.functional.helpers import EventSink, watching, details, reconcile

BR_INT = {"id": "br-int", "driver": "ovs_bridge", "name": "br-int", "datapath_type": "netdev",
          "ports": [{"name": "patch-tun", "type": "patch", "peer": "patch-int"}]}
BR_EX = {"id": "br-ex", "driver": "ovs_bridge", "name": "br-ex", "datapath_type": "netdev",
         "external_ids": {"bridge-id": "br-ex"}, "fail_mode": "standalone",
         "ports": ["eth2", {"name": "ex-internal", "type": "internal"},
                   {"name": "gre-net2", "type": "gre", "remote_ip": "198.18.1.31", "key": "flow"}]}


@pytest.fixture
def engine(lab, registry):
    return Engine(registry, lab_context(lab))


def ports(lab, bridge):
    return sorted(lab.vsctl("list-ports", bridge).stdout.split())


def test_bridges_created_then_in_sync_then_drift_fixed(lab, engine):
    results = reconcile(engine, BR_INT, BR_EX)
    assert {r.status for r in results.values()} == {Status.CHANGED}, results
    assert ports(lab, "br-ex") == ["eth2", "ex-internal", "gre-net2"]
    assert lab.vsctl("get", "Bridge", "br-ex", "datapath_type").stdout.strip() == "netdev"
    assert lab.vsctl("get", "Bridge", "br-ex", "external_ids:bridge-id").stdout.strip() == "br-ex"
    assert lab.vsctl("get", "Interface", "gre-net2", "type").stdout.strip() == "gre"
    assert lab.vsctl("get", "Interface", "gre-net2", "options").stdout.strip() == '{key=flow, remote_ip="198.18.1.31"}'
    assert lab.vsctl("get", "Interface", "patch-tun", "options:peer").stdout.strip() == "patch-int"
    assert lab.vsctl("get", "Interface", "eth2", "ofport").stdout.strip() not in ("[]", "-1")
    assert lab.exec("ip", "link", "show", "br-ex").returncode == 0  # vswitchd made it: a tap in the namespace
    assert {r.status for r in reconcile(engine, BR_INT, BR_EX).values()} == {Status.IN_SYNC}

    lab.vsctl("del-port", "br-ex", "eth2")
    lab.vsctl("set", "Interface", "gre-net2", "options:remote_ip=198.18.1.99")
    lab.vsctl("br-set-external-id", "br-ex", "bridge-id", "wrong")
    planned = reconcile(engine, BR_EX, dry_run=True)["br-ex"]
    assert details(planned) == ["external_ids.bridge-id: wrong → br-ex", "ports.eth2: (absent) → system",
                                "ports.gre-net2: gre(key=flow,remote_ip=198.18.1.99) → gre(key=flow,remote_ip=198.18.1.31)"]
    assert reconcile(engine, BR_EX)["br-ex"].status is Status.CHANGED
    assert reconcile(engine, BR_EX)["br-ex"].status is Status.IN_SYNC

    lab.vsctl("del-br", "br-int")
    assert details(reconcile(engine, BR_INT, dry_run=True)["br-int"])[0] == "bridge: (absent) → br-int"
    assert reconcile(engine, BR_INT)["br-int"].status is Status.CHANGED
    assert ports(lab, "br-int") == ["patch-tun"]

    gone = reconcile(engine, {**BR_EX, "state": "absent"})["br-ex"]
    assert gone.status is Status.CHANGED
    assert lab.vsctl("br-exists", "br-ex", check=False).returncode == 2
    assert reconcile(engine, BR_INT)["br-int"].status is Status.IN_SYNC  # the other bridge untouched


def test_purge_ports_removes_unlisted_ports_only_when_asked(lab, engine):
    reconcile(engine, BR_INT)
    lab.vsctl("add-port", "br-int", "stray", "--", "set", "Interface", "stray", "type=internal")
    assert reconcile(engine, BR_INT)["br-int"].status is Status.IN_SYNC
    purge = {**BR_INT, "purge_ports": True}
    # The driver reads the agent's replica of the database (ovsdbapp's IDL), which hears of a port added behind
    # its back a moment later: under load, later than the next line (as a drift watch would, it looks again).
    wait_until(lambda: details(reconcile(engine, purge, dry_run=True)["br-int"]) != [], timeout=10)
    purged = reconcile(engine, purge)["br-int"]
    assert details(purged) == ["ports.stray: internal → (absent)"] and purged.status is Status.CHANGED
    assert ports(lab, "br-int") == ["patch-tun"]


def test_system_datapath_without_the_kernel_module_is_a_clear_error(lab, engine):
    failed = reconcile(engine, {"id": "br-sys", "driver": "ovs_bridge", "name": "br-sys"})["br-sys"]
    assert failed.status is Status.FAILED and failed.error_kind == "permanent"
    assert failed.error.startswith("ovs-vswitchd did not create bridge br-sys")
    assert "use 'netdev'" in failed.error


def test_missing_port_is_named_and_nothing_is_written(lab, engine):
    failed = reconcile(engine, {**BR_EX, "ports": ["eth2", "eth7"]})["br-ex"]
    assert failed.status is Status.FAILED
    assert failed.error == f"interface eth7 not found in network namespace '{lab.name}'"
    assert lab.vsctl("br-exists", "br-ex", check=False).returncode == 2


def test_a_port_of_another_bridge_is_not_stolen(lab, engine):
    reconcile(engine, BR_EX)
    failed = reconcile(engine, {**BR_INT, "ports": ["eth2"]})["br-int"]
    assert failed.error == "port eth2 already belongs to bridge br-ex"
    assert ports(lab, "br-ex")[0] == "eth2"


@pytest.mark.parametrize("change, message", [
    ({"ports": "eth2,eth3"}, "resource 'br-ex': field 'ports' must be a list of interface names, got 'eth2,eth3'"),
    ({"ports": [{"name": "p", "type": "patch"}]}, "resource 'br-ex': field 'ports[0].peer' is required for a patch port"),
    ({"ports": [{"name": "t", "type": "gre"}]}, "resource 'br-ex': field 'ports[0].remote_ip' is required for a gre port"),
    ({"ports": [{"name": "t", "type": "gre", "remote_ip": "300.1.1.1"}]}, "field 'ports[0].remote_ip' must be an IPv4 address"),
    ({"ports": ["eth2", "eth2"]}, "resource 'br-ex': field 'ports' lists eth2 more than once"),
    ({"datapath_type": "dpdk"}, "resource 'br-ex': field 'datapath_type' must be one of system, netdev, got 'dpdk'"),
    ({"external_ids": {"a": 1}}, "resource 'br-ex': field 'external_ids' must be a mapping of strings to strings"),
])
def test_bad_input_is_refused(engine, lab, change, message):
    with pytest.raises(InvalidDocument) as caught:
        reconcile(engine, {**BR_EX, **change})
    assert message in str(caught.value)
    assert lab.vsctl("br-exists", "br-ex", check=False).returncode == 2


def test_watch_reports_port_and_bridge_deletion(lab, engine, registry):
    reconcile(engine, BR_INT, BR_EX)
    driver = registry.get("ovs_bridge")
    specs = {r["id"]: driver.validate({k: v for k, v in r.items() if k not in ("id", "driver")})
             for r in (BR_INT, BR_EX)}
    sink = EventSink()
    with watching(driver, specs, engine.ctx, sink):
        for command, resource_id in [(("del-port", "br-ex", "eth2"), "br-ex"),
                                     (("set", "Interface", "gre-net2", "options:key=7"), "br-ex"),
                                     (("del-br", "br-int"), "br-int")]:
            sink.drain()
            lab.vsctl(*command)
            assert sink.wait_for(resource_id), f"no event for {resource_id} after ovs-vsctl {' '.join(command)}"
