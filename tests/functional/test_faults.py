"""Faults of the parts around the agent: the coordinator killed and restarted (nothing lost), the node's
ovsdb-server restarted (the OVS driver reconnects and resyncs, even when the database came back empty)."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
import yaml

from nodeagent.testing.lab import SCHEMA, Fleet, LabNode
from nodeagent.testing.waiting import wait_until

DOCUMENT = {"resources": [
    {"id": "neutron-conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
     "settings": {"DEFAULT": {"core_plugin": "ml2"}}},
    {"id": "br-ex", "driver": "ovs_bridge", "name": "br-ex", "datapath_type": "netdev", "ports": ["eth2"]},
]}


@pytest.fixture
def fleet(tmp_path):
    # A resync interval far beyond the test: only events and reconnects can make the agent look again.
    fleet = Fleet(tmp_path, report_interval=1, auto_accept=True, resync_interval=3600)
    try:
        fleet.add_node("f1", ["eth2"])
        fleet.start("coordinator")
        fleet.start("f1")
        wait_until(lambda: "f1" in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout, timeout=30)
        (tmp_path / "state.yaml").write_text(yaml.safe_dump(DOCUMENT))
        fleet.ctl("node", "set-state", "f1", str(tmp_path / "state.yaml"))
        wait_until(lambda: state(fleet) == "converged 1/1", timeout=30)
        yield fleet
    finally:
        fleet.close()


def state(fleet: Fleet) -> str:
    return " ".join(fleet.ctl("node", "list", "-f", "value", "-c", "State", "-c", "Generation").stdout.split())


def drift(fleet: Fleet) -> list[dict]:
    return json.loads(fleet.ctl("drift", "list", "-f", "json").stdout)


def test_a_killed_coordinator_restarts_and_nothing_is_lost(fleet):
    conf = fleet.directory / "f1/root/etc/neutron/neutron.conf"
    spool = fleet.directory / "f1/state/spool"
    fleet.ctl("secret", "set", "RABBIT_PASS", stdin="kept-across-restarts\n")
    assert fleet.stop("coordinator", signal.SIGKILL) == -signal.SIGKILL
    for number in range(2):
        conf.write_text(conf.read_text().replace("core_plugin = ml2", f"core_plugin = while-down-{number}"))
        wait_until(lambda: "core_plugin = ml2" in conf.read_text(), timeout=10)
    wait_until(lambda: len(list(spool.glob("*.json"))) >= 2, timeout=10)
    changed = {"resources": DOCUMENT["resources"] + [
        {"id": "extra", "driver": "file", "path": "/etc/neutron/extra.conf", "content": "x\n"}]}
    (fleet.directory / "changed.yaml").write_text(yaml.safe_dump(changed))
    fleet.ctl("node", "set-state", "f1", str(fleet.directory / "changed.yaml"), "--no-push")  # stored meanwhile
    fleet.start("coordinator")
    wait_until(lambda: state(fleet) == "converged 2/2", timeout=30)
    wait_until(lambda: not list(spool.glob("*.json")), timeout=30)
    assert [d["Changes"][0] for d in drift(fleet)] == [
        f"DEFAULT.core_plugin: found while-down-{n}, expected ml2" for n in range(2)]
    assert (fleet.directory / "f1/root/etc/neutron/extra.conf").read_text() == "x\n"
    secrets = json.loads(fleet.ctl("secret", "list", "-f", "json").stdout)
    assert [s["Secret"] for s in secrets] == ["RABBIT_PASS"]


def restart_ovsdb(node: LabNode, empty: bool) -> None:
    """Stop the node's ovsdb-server and start it again on the same socket, on its database or a new empty one."""
    d = node.directory
    subprocess.run(["ovs-appctl", "-t", str(d / "ovsdb-server.ctl"), "exit"], check=True, capture_output=True,
                   timeout=10)
    if empty:
        (d / "conf.db").unlink()
        subprocess.run(["ovsdb-tool", "create", str(d / "conf.db"), SCHEMA], check=True)
    node.exec("ovsdb-server", str(d / "conf.db"), f"--remote=punix:{d}/db.sock", f"--pidfile={d}/ovsdb-server.pid",
              f"--unixctl={d}/ovsdb-server.ctl", f"--log-file={d}/ovsdb-server.log", "--detach")
    if empty:
        node.vsctl("--no-wait", "init")


@pytest.mark.parametrize("empty", [False, True], ids=["same database", "database recreated empty"])
def test_the_ovs_driver_reconnects_and_resyncs_after_an_ovsdb_server_restart(fleet, empty):
    node = fleet.nodes["f1"]
    restart_ovsdb(node, empty)
    # Recreated empty, br-ex vanished without any event: the resync after the reconnect puts it back.
    wait_until(lambda: node.vsctl("list-ports", "br-ex", check=False).stdout.split() == ["eth2"], timeout=20)
    node.vsctl("del-br", "br-ex")  # and the watch works on the new connection
    wait_until(lambda: node.vsctl("list-ports", "br-ex", check=False).stdout.split() == ["eth2"], timeout=20)
    assert any(d["Resource"] == "br-ex" and d["State"] == "corrected" for d in drift(fleet))
