"""The three-node guide's files, bridges and sysctls from roles, on lab nodes with stand-in services.

What these tests judge is the mechanics (what the roles write, re-render, refuse, restart); whether the roles
make a working Neutron is judged by the real services in test_real_neutron.py.

The tests share one fleet with the guide's roles assigned (the ``guide`` fixture: starting three nodes with
their systemds takes a while); each reads the generations it starts from and puts back the addresses it
changes, so any test runs alone and in any order. The missing-secrets test has a small fleet of its own."""

from __future__ import annotations

import configparser
import contextlib
import json

import pytest

from nodeagent.testing.lab import Fleet
from tests.conftest import REPO
from nodeagent.testing.waiting import wait_until

# The first test to run also starts the shared fleet (a minute or two on a loaded machine).
pytestmark = pytest.mark.timeout(600)
SECRETS = {"RABBIT_PASS": "rabbit-s3cret", "NEUTRON_PASS": "neutron-s3cret", "NEUTRON_DBPASS": "db-s3cret", "ADMIN_PASS": "admin-s3cret",
           "NOVA_PASS": "nova-s3cret", "METADATA_SECRET": "metadata-s3cret"}
ADDRESSES = {"controller": "198.18.3.11/24", "network1": "198.18.3.21/24", "compute1": "198.18.3.31/24"}
SERVICES = {"controller": ["neutron-server", "nova-api", "nova-scheduler", "nova-conductor"],
            "network1": ["openvswitch-switch", "neutron-openvswitch-agent", "neutron-l3-agent", "neutron-dhcp-agent",
                         "neutron-metadata-agent"],
            "compute1": ["openvswitch-switch", "neutron-openvswitch-agent", "nova-compute"]}


def role_fleet(directory, nodes: dict[str, tuple[str, list[str]]]):
    """A coordinator with the repository's roles and agents on lab nodes (address on eth1, stand-in services),
    yielded once every agent has reported its interfaces."""
    fleet = Fleet(directory, report_interval=1, auto_accept=True,
                  coordinator_options={"roles_dir": REPO / "etc" / "roles"})
    try:
        fleet.start("coordinator")
        for host, (address, services) in nodes.items():
            node = fleet.add_node(host, ["eth1", "eth2"], services=services)
            node.exec("ip", "addr", "add", address, "dev", "eth1")
            fleet.start(host)
        wait_until(lambda: all("eth1" in fleet.ctl("node", "show", h, "-f", "json", check=False).stdout
                               for h in nodes), timeout=60)
        yield fleet
    finally:
        fleet.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    yield from role_fleet(tmp_path_factory.mktemp("roles"),
                          {host: (address, SERVICES[host]) for host, address in ADDRESSES.items()})


@pytest.fixture(scope="module")
def guide(fleet) -> dict[str, str]:
    """The three-node guide set up through the CLI (secrets, variables, roles), converged; what the CLI said."""
    said = {}
    for key, value in SECRETS.items():
        done = fleet.ctl("secret", "set", key, stdin=value + "\n")
        said[f"secret {key}"] = done.stdout + done.stderr
    fleet.ctl("var", "set", "datapath_type", "netdev")
    fleet.ctl("var", "set", "openstack_packages", "false")  # stand-in services; the agents' tools are the host's
    for step in ("manage_database", "manage_keystone"):  # no MariaDB or keystone on lab nodes (see test_command)
        fleet.ctl("var", "set", step, "false")
    fleet.ctl("var", "set", "overlay", "gre")
    for host in ("network1", "compute1"):
        fleet.ctl("var", "set", "--node", host, "overlay_interface", "eth1")
    fleet.ctl("var", "set", "--node", "network1", "external_interface", "eth2")
    for host, role in (("controller", "controller"), ("network1", "network"), ("compute1", "compute")):
        said[f"assign {host}"] = fleet.ctl("node", "assign", host, role).stdout
    wait_until(lambda: converged(fleet, "1/1"), timeout=60)
    return said


def ini(fleet, host, path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.read(fleet.directory / host / "root" / path.lstrip("/"))
    return parser


def converged(fleet, generation=None) -> bool:
    rows = json.loads(fleet.ctl("node", "list", "-f", "json").stdout)
    return all(r["State"] == "converged" and (generation is None or r["Generation"] == generation) for r in rows)


def test_missing_secrets_and_variables_block_the_push(tmp_path):
    with contextlib.contextmanager(role_fleet)(tmp_path, {"compute1": (ADDRESSES["compute1"], None)}) as fleet:
        done = fleet.ctl("node", "assign", "compute1", "compute", check=False)
        assert done.returncode == 1
        assert "role 'compute' for node 'compute1' needs secret 'RABBIT_PASS'" in done.stderr
        assert "compute" not in fleet.ctl("node", "show", "compute1", "-f", "json").stdout.split('"roles"')[1][:40]


def test_the_three_node_guide_converges_from_roles(fleet, guide):
    for key, value in SECRETS.items():
        assert value not in guide[f"secret {key}"]
    listed = fleet.ctl("secret", "list", "-f", "value").stdout
    assert "RABBIT_PASS" in listed and "s3cret" not in listed
    assert "controller: generation 1 pushed" in guide["assign controller"]
    wait_until(lambda: converged(fleet), timeout=60)

    neutron = ini(fleet, "controller", "/etc/neutron/neutron.conf")
    assert neutron.get("database", "connection") == "mysql+pymysql://neutron:db-s3cret@controller/neutron"
    assert neutron.get("DEFAULT", "core_plugin") == "ml2" and neutron.get("DEFAULT", "service_plugins") == "router"
    assert neutron.get("DEFAULT", "transport_url") == "rabbit://openstack:rabbit-s3cret@controller:5672/"
    assert neutron.get("keystone_authtoken", "www_authenticate_uri") == "http://controller:5000"
    assert neutron.get("nova", "password") == "nova-s3cret"
    ml2 = ini(fleet, "controller", "/etc/neutron/plugins/ml2/ml2_conf.ini")
    assert (ml2.get("ml2", "type_drivers"), ml2.get("ml2", "tenant_network_types")) == ("flat,vlan,gre", "gre")
    assert ml2.get("ml2_type_gre", "tunnel_id_ranges") == "1:1000"
    assert (fleet.directory / "controller/root/etc/neutron/plugin.ini").is_symlink()
    nova = ini(fleet, "controller", "/etc/nova/nova.conf")
    assert nova.get("neutron", "metadata_proxy_shared_secret") == "metadata-s3cret"

    metadata = ini(fleet, "network1", "/etc/neutron/metadata_agent.ini")
    assert metadata.get("DEFAULT", "nova_metadata_host") == "controller"
    assert metadata.get("DEFAULT", "metadata_proxy_shared_secret") == "metadata-s3cret"
    assert ini(fleet, "network1", "/etc/neutron/l3_agent.ini").get("DEFAULT", "interface_driver") == "openvswitch"
    dhcp = ini(fleet, "network1", "/etc/neutron/dhcp_agent.ini")
    assert dhcp.get("DEFAULT", "dnsmasq_config_file") == "/etc/neutron/dnsmasq-neutron.conf"
    assert (fleet.directory / "network1/root/etc/neutron/dnsmasq-neutron.conf").read_text() == \
        "dhcp-option-force=26,1454\n"
    ovs_agent = ini(fleet, "network1", "/etc/neutron/plugins/ml2/openvswitch_agent.ini")
    assert ovs_agent.get("ovs", "local_ip") == "198.18.3.21" and ovs_agent.get("agent", "tunnel_types") == "gre"
    network = fleet.nodes["network1"]
    assert network.vsctl("list-ports", "br-ex").stdout.split() == ["eth2"]
    assert network.vsctl("br-exists", "br-int", check=False).returncode == 0
    assert network.exec("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    assert "generic-receive-offload: off" in network.exec("ethtool", "-k", "eth2").stdout

    compute = ini(fleet, "compute1", "/etc/neutron/plugins/ml2/openvswitch_agent.ini")
    assert compute.get("ovs", "local_ip") == "198.18.3.31"
    assert not ini(fleet, "compute1", "/etc/neutron/neutron.conf").has_section("database")
    assert ini(fleet, "compute1", "/etc/nova/nova.conf").get("neutron", "username") == "neutron"
    assert fleet.nodes["compute1"].exec("sysctl", "-n", "net.ipv4.conf.all.rp_filter").stdout.strip() == "0"
    for host, services in SERVICES.items():
        for service in services:
            assert active(fleet, host, service) == ("active", "enabled"), (host, service)
    # the heartbeat's health says whether each managed service has processes
    wait_until(lambda: json.loads(fleet.ctl("node", "show", "compute1", "-f", "json").stdout)["health"].get(
        "services") == {"openvswitch-switch": True, "neutron-openvswitch-agent": True, "nova-compute": True})


def active(fleet, host, service):
    import subprocess
    out = subprocess.run([*fleet.systemds[host].systemctl, "show", f"{service}.service", "-p",
                          "ActiveState,UnitFileState"], capture_output=True, text=True).stdout
    values = dict(line.split("=", 1) for line in out.splitlines())
    return values["ActiveState"], values["UnitFileState"]


def starts(fleet, host, service) -> int:
    log = fleet.directory / host / "systemd" / f"{service}.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def generations(fleet) -> dict[str, int]:
    """The generation the coordinator holds for each node."""
    rows = json.loads(fleet.ctl("node", "list", "-f", "json").stdout)
    return {r["Host"]: int(r["Generation"].split("/")[1]) for r in rows}


def test_a_variable_change_re_renders_pushes_and_restarts_what_reads_it(fleet, guide):
    wait_until(lambda: converged(fleet), timeout=60)
    before = {s: starts(fleet, "compute1", s) for s in SERVICES["compute1"]}
    held = generations(fleet)
    out = fleet.ctl("var", "set", "region", "RegionTwo").stdout
    assert f"controller: generation {held['controller'] + 1} pushed" in out
    assert f"compute1: generation {held['compute1'] + 1} pushed" in out
    assert "network1" not in out  # its document does not read the region
    wait_until(lambda: converged(fleet) and ini(fleet, "compute1", "/etc/nova/nova.conf").get(
        "neutron", "region_name") == "RegionTwo", timeout=60)
    wait_until(lambda: starts(fleet, "compute1", "nova-compute") == before["nova-compute"] + 1)
    assert starts(fleet, "compute1", "neutron-openvswitch-agent") == before["neutron-openvswitch-agent"]


def test_an_inconsistent_inventory_is_refused_before_anything_is_pushed(fleet, guide):
    before = fleet.ctl("node", "list", "-f", "value", "-c", "Host", "-c", "Generation").stdout
    done = fleet.ctl("var", "set", "--node", "compute1", "overlay_interface", "eth9", check=False)
    assert done.returncode == 1
    assert "names interface eth9, which node 'compute1' does not have" in done.stderr
    fleet.nodes["compute1"].exec("ip", "addr", "add", "198.18.3.21/24", "dev", "eth2")
    wait_until(lambda: "198.18.3.21" in fleet.ctl("node", "show", "compute1", "-f", "json").stdout)
    done = fleet.ctl("var", "set", "--node", "compute1", "overlay_interface", "eth2", check=False)
    assert done.returncode == 1
    assert "overlay address 198.18.3.21 is local_ip of several nodes: compute1, network1" in done.stderr
    assert fleet.ctl("node", "list", "-f", "value", "-c", "Host", "-c", "Generation").stdout == before
    variables = fleet.ctl("var", "list", "--node", "compute1", "-f", "json").stdout
    assert {"Variable": "overlay_interface", "Value": "eth1", "From": "node"} in json.loads(variables)
    assert json.loads(fleet.ctl("events", "-f", "json", "--type", "push.blocked").stdout)
    fleet.nodes["compute1"].exec("ip", "addr", "del", "198.18.3.21/24", "dev", "eth2")  # as it was
    wait_until(lambda: "198.18.3.21" not in fleet.ctl("node", "show", "compute1", "-f", "json").stdout)


def test_node_plan_shows_what_a_render_would_change_and_new_facts_re_render(fleet, guide):
    wait_until(lambda: converged(fleet), timeout=60)
    rows = json.loads(fleet.ctl("node", "plan", "compute1", "-f", "json").stdout)
    assert {row["Status"] for row in rows} == {"in_sync"}
    fleet.nodes["compute1"].exec("ip", "addr", "flush", "dev", "eth1")
    fleet.nodes["compute1"].exec("ip", "addr", "add", "198.18.3.32/24", "dev", "eth1")
    agent = fleet.directory / "compute1/root/etc/neutron/plugins/ml2/openvswitch_agent.ini"
    # the agent reports its new address; the coordinator renders again and pushes local_ip
    wait_until(lambda: "local_ip = 198.18.3.32" in agent.read_text(), timeout=60)
    assert any(e["Node"] == "compute1" for e in json.loads(fleet.ctl("events", "-f", "json", "--type",
                                                                     "state.set").stdout))
    fleet.nodes["compute1"].exec("ip", "addr", "flush", "dev", "eth1")  # as it was, for the other tests
    fleet.nodes["compute1"].exec("ip", "addr", "add", ADDRESSES["compute1"], "dev", "eth1")
    wait_until(lambda: "local_ip = 198.18.3.31" in agent.read_text(), timeout=60)
