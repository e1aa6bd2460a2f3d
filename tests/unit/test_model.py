"""Document validation: every bad document is refused with a message naming resource and field."""

from __future__ import annotations

import pytest

from nodeagent.kit.errors import InvalidDocument
from nodeagent.document.model import load_document, parse_document
from tests.conftest import EXAMPLES


def doc(*resources, **top):
    return {"node": "net1", "generation": 3, **top, "resources": list(resources)}


INI = {"id": "conf", "driver": "ini", "path": "/etc/neutron/neutron.conf", "settings": {"DEFAULT": {"a": 1}}}
FILE = {"id": "f", "driver": "file", "path": "/etc/neutron/x.conf", "content": "x\n"}

BAD = [
    ("not a mapping", ["x"], "document must be a mapping"),
    ("unknown top field", {**doc(), "nodes": 1}, "unknown field(s) nodes"),
    ("no node", {"generation": 1, "resources": []}, "field 'node' must be a host name, got None"),
    ("node with space", doc(node="net 1"), "field 'node' must be a host name"),
    ("negative generation", doc(generation=-1), "field 'generation' must be a non-negative integer (at most 9223372036854775807), got -1"),
    ("bool generation", doc(generation=True), "field 'generation' must be a non-negative integer (at most 9223372036854775807), got True"),
    ("bad mode", doc(mode="fix"), "field 'mode' must be one of enforce, monitor, got 'fix'"),
    ("resources not a list", {"node": "n", "resources": {"a": 1}}, "field 'resources' must be a list"),
    ("resource not a mapping", doc("conf"), "resources[0] must be a mapping"),
    ("no id", doc({"driver": "file"}), "resources[0]: field 'id' must be a name"),
    ("bad id", doc({**FILE, "id": "a b"}), "resources[0]: field 'id' must be a name"),
    ("unknown driver", doc({"id": "x", "driver": "puppet"}),
     "resource 'x': field 'driver' names unknown driver 'puppet' (known drivers: address, command, ethtool, file, ini, kernel_module, linux_bridge, ovs_bridge, package, service, symlink, sysctl)"),
    ("missing driver", doc({"id": "x"}), "resource 'x': field 'driver' names unknown driver None"),
    ("duplicate id", doc(FILE, FILE), "resource 'f': duplicate id"),
    ("dangling after", doc({**FILE, "after": ["nope"]}), "resource 'f': field 'after' names 'nope', which is not"),
    ("after not a list", doc({**FILE, "after": "conf"}), "resource 'f': field 'after' must be a list of resource ids"),
    ("after itself", doc({**FILE, "after": ["f"]}), "resource 'f': field 'after' names the resource itself"),
    ("notify a file", doc(FILE, {**INI, "notify": ["f"]}),
     "resource 'conf': field 'notify' names 'f', whose driver 'file' cannot be notified"),
    ("cycle", doc({**FILE, "after": ["conf"]}, {**INI, "after": ["f"]}), "dependency cycle between resources"),
    ("per-resource mode", doc({**FILE, "mode": "0644"}), "resource 'f': field 'mode' must be one of enforce, monitor"),
    ("unknown field", doc({**FILE, "contents": "x"}),
     "resource 'f': field 'contents' is not known to driver 'file' (known fields: path, content, state,"),
    ("relative path", doc({**FILE, "path": "etc/neutron/x"}), "resource 'f': field 'path' must be an absolute path"),
    ("dotdot path", doc({**FILE, "path": "/etc/neutron/../shadow"}), "resource 'f': field 'path' must not contain '..'"),
    ("decimal permissions", doc({**FILE, "permissions": 640}),
     "resource 'f': field 'permissions' must be an octal string such as '0640', got 640"),
    ("bad owner", doc({**FILE, "owner": ["root"]}), "resource 'f': field 'owner' must be a name or a numeric id"),
    ("file without content", doc({"id": "f", "driver": "file", "path": "/etc/neutron/x"}),
     "resource 'f': field 'content' must be the file's text, got None"),
    ("ini without settings", doc({"id": "c", "driver": "ini", "path": "/etc/neutron/a.ini"}),
     "resource 'c': field 'settings' is required"),
    ("ini section not mapping", doc({**INI, "settings": {"DEFAULT": "a=1"}}),
     "resource 'conf': field 'settings.DEFAULT' must be a mapping of option to value"),
    ("ini bad key", doc({**INI, "settings": {"DEFAULT": {"a b": 1}}}),
     "resource 'conf': field 'settings.DEFAULT.a b' has an invalid option name"),
    ("ini nested value", doc({**INI, "settings": {"DEFAULT": {"a": {"b": 1}}}}),
     "resource 'conf': field 'settings.DEFAULT.a' must be a single-line value or a list of them"),
    ("ini empty list", doc({**INI, "settings": {"DEFAULT": {"a": []}}}),
     "resource 'conf': field 'settings.DEFAULT.a' must not be an empty list"),
    ("ini multi-line value", doc({**INI, "settings": {"DEFAULT": {"a": "x\ny"}}}),
     "resource 'conf': field 'settings.DEFAULT.a' must not contain control characters ('\\n' at offset 1 of 3)"),
    ("ini set and absent", doc({**INI, "absent": {"DEFAULT": ["a"]}}),
     "resource 'conf': field 'absent.DEFAULT' names 'a', which 'settings' also sets"),
    ("sensitive unknown key", doc({**INI, "sensitive": ["DEFAULT.b"]}),
     "resource 'conf': field 'sensitive' names 'DEFAULT.b', which is neither a setting nor an absent key of this resource"),
    ("sensitive a string", doc({**INI, "sensitive": "DEFAULT.a"}),
     "resource 'conf': field 'sensitive' must be true or a list of field names"),
    ("symlink without target", doc({"id": "l", "driver": "symlink", "path": "/etc/neutron/plugin.ini"}),
     "resource 'l': field 'target' must be the path the link points to"),
    ("sysctl bad name", doc({"id": "s", "driver": "sysctl", "settings": {"ip_forward": 1}}),
     "resource 's': field 'settings' has an invalid parameter name 'ip_forward'"),
    ("sysctl bool value", doc({"id": "s", "driver": "sysctl", "settings": {"net.ipv4.ip_forward": True}}),
     "resource 's': field 'settings.net.ipv4.ip_forward' must be a number"),
    ("sysctl escape", doc({"id": "s", "driver": "sysctl", "settings": {"net.ipv4.ip_forward": 1},
                           "persist": "/etc/sysctl.d/../../x"}), "resource 's': field 'persist' must not contain '..'"),
    ("file bad state", doc({**FILE, "state": "gone"}), "resource 'f': field 'state' must be one of present, absent"),
]


@pytest.mark.parametrize("raw, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_documents_are_refused_with_a_message_naming_resource_and_field(registry, raw, message):
    with pytest.raises(InvalidDocument) as caught:
        parse_document(raw, registry)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_example_document_is_valid(registry):
    document = load_document(EXAMPLES / "network-node.yaml", registry)
    assert document.node == "network1"
    assert len(document.resources) == 12
    assert document.order.index("ml2-conf") < document.order.index("plugin-ini")
    assert document.order.index("dnsmasq-neutron") < document.order.index("dhcp-agent-ini")


def test_yaml_syntax_error_names_file_and_line(registry, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("node: n\nresources:\n  - id: a\n   driver: file\n")
    with pytest.raises(InvalidDocument, match=r"broken.yaml: line 4, column \d+"):
        load_document(path, registry)


def test_json_documents_are_read(registry, tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"node": "n", "generation": 2, "resources": [{"id": "f", "driver": "file", '
                    '"path": "/etc/neutron/f", "content": "x"}]}')
    assert load_document(path, registry).generation == 2


def test_order_follows_after_then_phase_then_document_order(registry):
    document = parse_document(doc(
        {"id": "sys", "driver": "sysctl", "settings": {"net.ipv4.ip_forward": 1}},
        {"id": "link", "driver": "symlink", "path": "/etc/neutron/plugin.ini", "target": "x"},
        {**FILE, "id": "late", "after": ["sys"]},
        {**FILE, "id": "early"},
    ), registry)
    assert document.order == ("early", "link", "sys", "late")


def test_cycle_message_shows_the_cycle(registry):
    with pytest.raises(InvalidDocument) as caught:
        parse_document(doc({**FILE, "id": "a", "after": ["c"]}, {**FILE, "id": "b", "after": ["a"]},
                           {**FILE, "id": "c", "after": ["b"]}), registry)
    assert "->" in str(caught.value)
    for name in "abc":
        assert name in str(caught.value)


def test_values_are_normalised(registry):
    document = parse_document(doc({**INI, "settings": {"DEFAULT": {"a": True, "b": 3, "c": ["x", "y"]}}}),
                              registry)
    assert document.resources[0].spec["settings"] == {"DEFAULT": {"a": ["true"], "b": ["3"], "c": ["x", "y"]}}


def test_the_compute_example_is_valid(registry):
    document = load_document(EXAMPLES / "compute-node.yaml", registry)
    assert document.order.index("overlay-vxlan") < document.order.index("provider-bridge")


def test_a_document_survives_its_own_serialisation(registry):
    for name in ("network-node.yaml", "compute-node.yaml"):
        document = load_document(EXAMPLES / name, registry)
        again = parse_document(document.to_dict(), registry)
        assert again == document and again.order == document.order


def test_notifying_twice_and_after_and_notify_together_order_as_one_edge(registry):
    svc = {"id": "svc", "driver": "service", "name": "neutron-server", "state": "running"}
    document = parse_document(doc({**svc, "id": "svc"}, {**INI, "notify": ["svc", "svc"]},
                                  {**FILE, "id": "f2", "after": ["conf"], "notify": ["svc"]}), registry)
    assert document.order.index("conf") < document.order.index("f2") < document.order.index("svc")
    assert document.predecessors("svc") == ["conf", "f2"]
