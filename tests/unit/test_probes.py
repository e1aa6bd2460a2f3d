"""A document's probes and rollback_timeout: bad ones refused naming the probe and the field, before anything
is touched; what the drivers record to undo a change is a valid spec of their own."""

from __future__ import annotations

import json

import pytest

from nodeagent.document.model import parse_document
from nodeagent.kit.errors import InvalidDocument
from nodeagent.wire.messages import AgentStatus, Malformed, Rollback
from tests.conftest import run_cli


def doc(**top):
    return {"node": "net1", "generation": 3, **top, "resources": []}


BAD = [
    ("not a list", doc(probes={"id": "gw"}), "field 'probes' must be a list of probes"),
    ("not a mapping", doc(probes=["198.18.0.1"]), "probes[0] must be a mapping"),
    ("no id", doc(probes=[{"ping": "198.18.0.1"}]), "probes[0]: field 'id' must be a name"),
    ("bad address", doc(probes=[{"id": "gw", "ping": "198.18.0.300"}]),
     "probe 'gw' (probes[0]): field 'ping' must be an address or host name, such as 198.18.0.1, got '198.18.0.300'"),
    ("address with a space", doc(probes=[{"id": "gw", "ping": "gw 1"}]), "probe 'gw' (probes[0]): field 'ping'"),
    ("port out of range", doc(probes=[{"id": "gw", "ping": "198.18.0.1"}, {"id": "api", "tcp": "controller:70000"}]),
     "probe 'api' (probes[1]): field 'tcp' has the port '70000', not a number from 1 to 65535"),
    ("port zero", doc(probes=[{"id": "api", "tcp": "controller:0"}]), "probe 'api' (probes[0]): field 'tcp' has the port"),
    ("no port", doc(probes=[{"id": "api", "tcp": "controller"}]),
     "probe 'api' (probes[0]): field 'tcp' must be HOST:PORT, such as controller:9696, got 'controller'"),
    ("bad tcp host", doc(probes=[{"id": "api", "tcp": "999.1.1.1:9696"}]), "probe 'api' (probes[0]): field 'tcp' must be"),
    ("unknown key", doc(probes=[{"id": "gw", "ping": "198.18.0.1", "count": 3}]),
     "probe 'gw' (probes[0]): unknown field 'count' (known: id, ping, tcp)"),
    ("two kinds", doc(probes=[{"id": "gw", "ping": "198.18.0.1", "tcp": "198.18.0.1:22"}]),
     "probe 'gw' (probes[0]): needs exactly one of the fields ping, tcp, got ping, tcp"),
    ("no kind", doc(probes=[{"id": "gw"}]), "probe 'gw' (probes[0]): needs exactly one of the fields ping, tcp, got none"),
    ("same id twice", doc(probes=[{"id": "gw", "ping": "198.18.0.1"}, {"id": "gw", "ping": "198.18.0.2"}]),
     "probe 'gw' (probes[1]): field 'id' is used twice"),
    ("the broker's id", doc(probes=[{"id": "broker", "tcp": "198.18.0.1:5672"}]),
     "probe 'broker' (probes[0]): field 'id' is the agent's own broker probe"),
    ("timeout not a number", doc(rollback_timeout="60"), "field 'rollback_timeout' must be a number of seconds"),
    ("timeout zero", doc(rollback_timeout=0), "field 'rollback_timeout' must be a number of seconds from 1 to 3600"),
    ("timeout bool", doc(rollback_timeout=True), "field 'rollback_timeout' must be a number of seconds"),
]


@pytest.mark.parametrize("raw, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_probes_are_refused_naming_the_probe_and_the_field(registry, raw, message):
    with pytest.raises(InvalidDocument) as caught:
        parse_document(raw, registry)
    assert message in str(caught.value)


def test_probes_and_timeout_survive_the_documents_serialisation(registry):
    raw = doc(probes=[{"id": "gw", "ping": "198.18.0.1"}, {"id": "api", "tcp": "controller:9696"},
                      {"id": "v6", "tcp": "[2001:db8::1]:443"}], rollback_timeout=5)
    document = parse_document(raw, registry)
    assert [(p.id, p.kind, p.host, p.port) for p in document.probes] == [
        ("gw", "ping", "198.18.0.1", None), ("api", "tcp", "controller", 9696), ("v6", "tcp", "2001:db8::1", 443)]
    assert document.rollback_timeout == 5
    again = parse_document(document.to_dict(), registry)
    assert again == document and again.to_dict() == document.to_dict()
    assert document.to_dict()["probes"][2] == {"id": "v6", "tcp": "[2001:db8::1]:443"}
    assert "probes" not in parse_document(doc(), registry).to_dict()


def test_a_rollback_travels_in_the_status():
    rollback = Rollback(generation=7, probe="broker", detail="broker (198.18.0.1:5672): no connection within 2 s",
                        at=1.0, restored=True)
    status = AgentStatus.from_dict({"generation": 6, "rolled_back": rollback.to_dict()})
    assert status.rolled_back == rollback
    assert AgentStatus.from_dict(status.to_dict()) == status
    assert rollback.describe() == ("generation 7 rolled back: probe broker failed: broker (198.18.0.1:5672): "
                                   "no connection within 2 s")
    with pytest.raises(Malformed, match="rolled_back.restored is missing"):
        AgentStatus.from_dict({"rolled_back": {"generation": 7, "probe": "gw", "detail": "", "at": 1.0}})
    assert AgentStatus.from_dict({"generation": 6}).rolled_back is None  # an agent of before still reads


OBSERVED = [  # a driver, the resource, what was seen before the change: its restoring() specs must validate
    ("linux_bridge", {"name": "br-up", "ports": ["eth0"]}, {"exists": False}),
    ("linux_bridge", {"name": "br-up", "ports": ["eth0"]},
     {"exists": True, "kind": "bridge", "mtu": 1500, "state": "up", "ports": ["eth9"]}),
    ("linux_bridge", {"kind": "vxlan", "name": "vx", "vni": 5, "local": "198.18.0.2"},
     {"exists": True, "kind": "vxlan", "mtu": 1450, "state": "up", "vni": 4, "local": "198.18.0.3", "device": None,
      "port": 4789, "learning": True}),
    ("ovs_bridge", {"name": "br-ex", "ports": ["eth0"]}, {"exists": False, "ports": {}}),
    ("ovs_bridge", {"name": "br-ex", "ports": ["eth0"]},
     {"exists": True, "datapath_type": "netdev", "fail_mode": None, "external_ids": {"a": "b"}, "own_error": None,
      "ports": {"patch-int": {"type": "patch", "options": {"peer": "patch-ex"}, "error": None},
                "gre1": {"type": "gre", "options": {"remote_ip": "198.18.1.3", "csum": "true"}, "error": None}}}),
    ("ethtool", {"interface": "eth0", "features": {"gro": False}},
     {"gro": {"on": True, "changeable": True}}),
    ("address", {"interface": "eth0", "address": "198.18.0.2/24", "state": "absent"},
     {"exists": True, "addresses": ["198.18.0.2/24", "198.18.5.2/24"], "link": "up"}),
    ("address", {"interface": "br-up", "address": "198.18.0.2/24"}, {"exists": False, "addresses": []}),
    ("sysctl", {"settings": {"net.ipv4.ip_forward": 1, "kernel.pid_max": 99999}},
     {"live": {"net.ipv4.ip_forward": "0", "kernel.pid_max": "4194304"}, "persisted": None}),
]


@pytest.mark.parametrize("driver, spec, observed", OBSERVED, ids=[f"{c[0]}-{i}" for i, c in enumerate(OBSERVED)])
def test_what_undoes_a_change_is_a_valid_spec_of_the_same_driver(registry, driver, spec, observed):
    plugin = registry.get(driver)
    assert plugin.network
    specs = plugin.restoring(plugin.validate(spec), observed)
    assert specs
    for back in specs:
        plugin.validate(back)
    if driver == "sysctl":
        assert specs == [{"settings": {"net.ipv4.ip_forward": "0"}}]  # only the network's parameters
    if driver == "ovs_bridge" and observed["exists"]:
        assert specs[0]["purge_ports"] and specs[0]["ports"][1] == {"name": "gre1", "type": "gre",
                                                                     "remote_ip": "198.18.1.3"}
    if driver == "address" and not observed["exists"]:
        assert specs == [{"interface": "br-up", "address": "198.18.0.2/24", "state": "absent"}]


def test_only_network_drivers_are_checkpointed(registry):
    assert {name for name in ("ini", "file", "symlink", "service", "package", "command", "kernel_module")
            if registry.get(name).network} == set()
    sysctl = registry.get("sysctl")
    spec = sysctl.validate({"settings": {"kernel.pid_max": 99999}})
    assert sysctl.restoring(spec, {"live": {"kernel.pid_max": "1"}, "persisted": None}) is None


def test_a_document_with_a_bad_probe_changes_nothing(root, tmp_path):
    state = tmp_path / "state.yaml"
    motd = {"id": "motd", "driver": "file", "path": "/etc/openstack/motd", "content": "x\n"}
    state.write_text(json.dumps({**doc(probes=[{"id": "api", "tcp": "controller:99999"}]), "resources": [motd]}))
    done = run_cli("apply", str(state), "--root", str(root))
    assert done.returncode == 1
    assert "probe 'api' (probes[0]): field 'tcp' has the port '99999', not a number from 1 to 65535" in done.stderr
    assert not (root / "etc").exists()
