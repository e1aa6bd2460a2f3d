"""The kinds of out-of-band change the drift tests and the drift benchmark make, on one lab node.

Each kind: the resource it drifts, how to make the change, how to tell it was put back.
"""

from __future__ import annotations

DOCUMENT = {"resources": [
    {"id": "neutron-conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
     "settings": {"DEFAULT": {"core_plugin": "ml2", "transport_url": "rabbit://openstack:s3cret@controller"}},
     "sensitive": ["DEFAULT.transport_url"]},
    {"id": "dnsmasq", "driver": "file", "path": "/etc/neutron/dnsmasq-neutron.conf",
     "content": "dhcp-option-force=26,1454\n"},
    {"id": "ml2-conf", "driver": "ini", "path": "/etc/neutron/plugins/ml2/ml2_conf.ini",
     "settings": {"ml2": {"type_drivers": "gre"}}},
    {"id": "plugin-ini", "driver": "symlink", "path": "/etc/neutron/plugin.ini", "target": "plugins/ml2/ml2_conf.ini",
     "after": ["ml2-conf"]},
    {"id": "forwarding", "driver": "sysctl", "settings": {"net.ipv4.ip_forward": 1}},
    {"id": "provider", "driver": "linux_bridge", "name": "brq-prov", "ports": ["eth1"]},
    {"id": "br-ex", "driver": "ovs_bridge", "name": "br-ex", "datapath_type": "netdev", "ports": ["eth2"]},
    {"id": "gro-off", "driver": "ethtool", "interface": "eth2", "features": {"gro": False}, "after": ["br-ex"]},
    {"id": "fought", "driver": "file", "path": "/etc/neutron/fought.conf", "content": "mine\n"},
]}


def root(fleet):
    return fleet.directory / "drift1/root"


KINDS = {
    "ini key edited": ("neutron-conf", lambda f, n: edit(root(f) / "etc/neutron/neutron.conf", "core_plugin = ml2",
                                                          "core_plugin = other"),
                       lambda f, n: "core_plugin = ml2" in (root(f) / "etc/neutron/neutron.conf").read_text()),
    "managed file rewritten": ("dnsmasq", lambda f, n: (root(f) / "etc/neutron/dnsmasq-neutron.conf").write_text("x\n"),
                               lambda f, n: (root(f) / "etc/neutron/dnsmasq-neutron.conf").read_text().endswith("1454\n")),
    "plugin.ini link deleted": ("plugin-ini", lambda f, n: (root(f) / "etc/neutron/plugin.ini").unlink(),
                                lambda f, n: (root(f) / "etc/neutron/plugin.ini").is_symlink()),
    "sysctl ip_forward=0": ("forwarding", lambda f, n: n.exec("sysctl", "-qw", "net.ipv4.ip_forward=0"),
                            lambda f, n: n.exec("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"),
    "port nomaster": ("provider", lambda f, n: n.exec("ip", "link", "set", "eth1", "nomaster"),
                      lambda f, n: "master brq-prov" in n.exec("ip", "link", "show", "eth1").stdout),
    "bridge down": ("provider", lambda f, n: n.exec("ip", "link", "set", "brq-prov", "down"),
                    lambda f, n: "state DOWN" not in n.exec("ip", "link", "show", "brq-prov").stdout
                    and ",UP" in n.exec("ip", "link", "show", "brq-prov").stdout),
    "ovs del-br br-ex": ("br-ex", lambda f, n: n.vsctl("del-br", "br-ex"),
                         lambda f, n: n.vsctl("list-ports", "br-ex", check=False).stdout.split() == ["eth2"]),
    "ethtool gro on": ("gro-off", lambda f, n: n.exec("ethtool", "-K", "eth2", "gro", "on"),
                       lambda f, n: "generic-receive-offload: off" in n.exec("ethtool", "-k", "eth2").stdout),
}


def edit(path, old, new):
    path.write_text(path.read_text().replace(old, new))
