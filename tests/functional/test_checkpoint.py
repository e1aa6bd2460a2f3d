"""A checkpoint restores every network driver's state through the drivers themselves, in a real namespace
with a private Open vSwitch: bridges made, ports moved, an address moved, an offload and net.* parameters
changed, then all of it undone."""

from __future__ import annotations

import json

import pytest

from nodeagent.document.model import parse_document
from nodeagent.kit.result import Status
from nodeagent.node import checkpoint
from nodeagent.node.checkpoint import Checkpoint, CheckpointFile
from nodeagent.node.engine import Engine
from tests.conftest import lab_context

ADDRESS = "198.18.9.2/24"
CHANGE = [
    {"id": "forwarding", "driver": "sysctl", "settings": {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 1}},
    {"id": "brq", "driver": "linux_bridge", "name": "brq", "ports": ["eth1"]},
    {"id": "br-ex", "driver": "ovs_bridge", "name": "br-ex", "datapath_type": "netdev", "ports": ["eth2"],
     "purge_ports": True},
    {"id": "br-new", "driver": "ovs_bridge", "name": "br-new", "datapath_type": "netdev"},
    {"id": "on-brq", "driver": "address", "interface": "brq", "address": ADDRESS, "link": "up", "after": ["brq"]},
    {"id": "off-eth1", "driver": "address", "interface": "eth1", "address": ADDRESS, "state": "absent",
     "after": ["on-brq"]},
    {"id": "gro", "driver": "ethtool", "interface": "eth2", "features": {"gro": False}},
    {"id": "motd", "driver": "file", "path": "/etc/openstack/motd", "content": "x\n"},  # no network: not recorded
]


@pytest.fixture
def node(lab):
    lab.add_nic("eth1")
    lab.exec("ip", "addr", "add", ADDRESS, "dev", "eth1")
    lab.exec("ethtool", "-K", "eth2", "gro", "on")  # veth starts with GRO off
    lab.vsctl("add-br", "br-ex", "--", "set", "Bridge", "br-ex", "datapath_type=netdev", "--",
              "add-port", "br-ex", "ex-int", "--", "set", "Interface", "ex-int", "type=internal")
    return lab


def network(lab) -> dict:
    """What a node's network looks like, as the kernel and Open vSwitch tell it."""
    links = {link["ifname"]: link.get("master") for link in json.loads(lab.exec("ip", "-j", "link").stdout)}
    addresses = {entry["ifname"]: sorted(f"{a['local']}/{a['prefixlen']}" for a in entry["addr_info"])
                 for entry in json.loads(lab.exec("ip", "-j", "-4", "addr").stdout) if entry["addr_info"]}
    gro = next(line for line in lab.exec("ethtool", "-k", "eth2").stdout.splitlines()
               if line.startswith("generic-receive-offload"))
    return {"links": {name: links.get(name, "(absent)") for name in ("brq", "eth1", "eth2")},
            "addresses": addresses, "gro": gro,
            "bridges": lab.vsctl("list-br").stdout.split(), "br-ex": lab.vsctl("list-ports", "br-ex").stdout.split(),
            "sysctl": lab.exec("sysctl", "-n", "net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter").stdout.split()}


def test_a_checkpoint_brings_every_network_driver_back(node, registry, tmp_path):
    (tmp_path / "root").mkdir()
    engine = Engine(registry, lab_context(node, tmp_path / "root"))
    document = parse_document({"node": "lab", "generation": 2, "resources": CHANGE}, registry)
    before = network(node)
    assert before["links"] == {"brq": "(absent)", "eth1": None, "eth2": None}
    undo = checkpoint.take(engine, document)
    assert [entry["id"] for entry in undo] == [r for r in document.order if r != "motd"]
    saved = Checkpoint("lab", 2, tuple(undo))
    CheckpointFile(tmp_path).save(saved)  # as the agent keeps it: read back from disk
    saved = CheckpointFile(tmp_path).load()

    applied = engine.reconcile(document)
    assert {r.id: r.status for r in applied.resources if r.status is not Status.CHANGED} == {}
    changed = network(node)
    assert changed["links"]["eth1"] == "brq"
    assert changed["addresses"].get("brq") == [ADDRESS] and "eth1" not in changed["addresses"]
    assert "br-new" in changed["bridges"] and changed["br-ex"] == ["eth2"]
    assert changed["sysctl"] == ["1", "1"] and changed["gro"].endswith("off")

    restored = checkpoint.restore(engine, saved)
    assert {r.id: r.error for r in restored.resources if r.status is Status.FAILED} == {}
    assert network(node) == before
    assert {r.status for r in checkpoint.restore(engine, saved).resources} == {Status.IN_SYNC}  # idempotent
    assert (tmp_path / "root/etc/openstack/motd").exists()  # files are the held document's business
