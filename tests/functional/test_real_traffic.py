"""The three-node guide judged by packets: ``nodeagentctl verify --traffic`` on the real Neutron.

One deployment (Open vSwitch + GRE, 2025.2, userspace datapath: the roles put the tunnel endpoint on br-phy) for
the module, with the provider network the controller role makes from variables and an upstream router (a
namespace on the wire of the nodes' eth2, which network1's br-ex has as its port). Stand-in instances on network1
and compute1 get their address from network1's dnsmasq across GRE with the guide's MTU option (1454), ping the
DHCP port, their router and each other, the router's gateway and the upstream router (SNAT: it has no route back
to the instances' subnet), and the upstream router pings each one's floating IP. A tunnel broken on purpose (the
tunnel endpoint back on the plain eth1, as the roles left it before) is named as the broken hop; an interrupted
probe leaves nothing behind.

The deployment runs the real Nova (``labnova``: placement, nova-api with the metadata API, conductor, scheduler on
the controller, nova-compute with the fake virt driver on compute1), whose databases, cells and Keystone entries
the controller role made (``manage_nova``). A server booted on a self-service network becomes ACTIVE with its port
bound by Nova (nova.conf's ``[neutron]`` credentials), Neutron's ``[nova]`` notifier delivers
``network-vif-plugged`` once a stand-in plugs the port as os-vif would, and the stand-in reads the server's
metadata from 169.254.169.254 through the router's proxy, the metadata agent and the shared secret. The probe
asks the metadata path too, and names a wrong shared secret on the metadata agent as the broken hop.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from nodeagent.fleet.trafficprobe import NETNS_PREFIX, PREFIX, PROBE_OWNER, NodeShell, StandIn
from nodeagent.testing import labguide, labnova
from nodeagent.testing.labguide import Deployment, deployed
from nodeagent.testing.waiting import wait_until
from tests.functional.test_real_neutron import healthy, in_node

pytestmark = pytest.mark.timeout(1200)
PROBED = ("compute1", "network1")


UPSTREAM = "198.19.67.1"  # the provider subnet's gateway: the upstream router
PROVIDER = {"provider_network_gateway": UPSTREAM, "provider_network_pool": "198.19.67.100-198.19.67.150",
            "provider_network_cidr": "198.19.67.0/24"}


@pytest.fixture(scope="module")
def three_node(tmp_path_factory):
    with deployed(tmp_path_factory.mktemp("traffic"), labguide.three_node(subnet=8), nova=True) as deployment:
        deployment.upstream = deployment.add_upstream(f"{UPSTREAM}/24")
        for key, value in PROVIDER.items():  # the cidr last: it turns the provider network on
            deployment.set_variable(key, value)
        yield deployment


def verify_traffic(deployment: Deployment, *args: str) -> tuple[int, list[dict]]:
    # about 20 s for two stand-ins, 45 s with floating IPs on an idle machine: more than Fleet.ctl's minute on a busy one
    program = Path(sys.executable).parent / "nodeagentctl"
    done = subprocess.run([str(program), "--config-file", str(deployment.fleet.coordinator_conf), "verify",
                           "--traffic", "-f", "json", *args], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def leftovers(deployment: Deployment) -> list[str]:
    """Whatever of a probe is still there: stand-in namespaces and br-int ports on the nodes, Neutron objects."""
    found = []
    for host in PROBED:
        found += [f"{host}: netns {n}" for n in in_node(deployment, host, "ip", "netns", "list").stdout.split()
                  if n.startswith(NETNS_PREFIX)]
        found += [f"{host}: br-int port {p}" for p in deployment.fleet.nodes[host].vsctl(
            "--columns=name", "--bare", "find", "Interface", f'external_ids:{PREFIX}!=""').stdout.split()]
    network = deployment.neutron.connection.network
    found += [f"port {p.id}" for p in network.ports(device_owner=PROBE_OWNER)]
    found += [f"network {n.name}" for n in network.networks() if n.name.startswith(PREFIX)]
    found += [f"router {r.name}" for r in network.routers() if r.name.startswith(PREFIX)]
    found += [f"floating ip {f.floating_ip_address}" for f in network.ips()]
    found += [f"security group {g.name}" for g in network.security_groups() if (g.name or "").startswith(PREFIX)]
    return found


def test_stand_ins_reach_dhcp_their_router_each_other_and_the_outside(three_node):
    healthy(three_node)
    # the upstream router knows only its own subnet: a reply reaches an instance only through SNAT or its FIP
    assert "default" not in subprocess.run(["ip", "netns", "exec", three_node.upstream, "ip", "route"],
                                           capture_output=True, text=True).stdout
    code, rows = verify_traffic(three_node, "--outside-access", f"ip netns exec {three_node.upstream}")
    assert code == 0, rows
    got = {(r["Host"], r["Check"]) for r in rows if r["Result"] == "ok"}
    checks = ("dhcp", "ping dhcp port", "ping router", "ping router gateway", "ping outside (SNAT)",
              "floating ip from the outside", "metadata")
    assert got == {(host, check) for host in PROBED for check in checks} | {
        ("compute1", "ping network1's instance"), ("network1", "ping compute1's instance")}, rows
    leases = [r["Target"] for r in rows if r["Check"] == "dhcp"]
    assert all(lease.startswith("198.19.254.") and lease.endswith(" mtu 1454") for lease in leases), leases
    assert {r["Target"] for r in rows if r["Check"] == "ping outside (SNAT)"} == {UPSTREAM}
    # a stand-in is no server: Nova's 'not found' means the proxy, the agent and the shared secret worked
    assert {r["Target"] for r in rows if r["Check"] == "metadata"} == {"169.254.169.254 (HTTP 404)"}, rows
    assert not leftovers(three_node)


def test_the_provider_network_is_made_once_from_the_variables(three_node):
    healthy(three_node)
    network = three_node.neutron.connection.network
    [provider] = [n for n in network.networks() if n.name == "provider"]
    assert (provider.is_router_external, provider.provider_network_type, provider.provider_physical_network) == (
        True, "flat", "provider")
    [subnet] = network.subnets(network_id=provider.id)
    assert (subnet.cidr, subnet.gateway_ip, subnet.is_dhcp_enabled, subnet.allocation_pools) == (
        "198.19.67.0/24", UPSTREAM, False, [{"start": "198.19.67.100", "end": "198.19.67.150"}])
    # the step ran on the controller without a failure, and made one network (its guard keeps it from a second)
    status = three_node.node("controller")["status"] or {}
    assert three_node.reconciled("controller") and not status.get("failed"), status
    assert [n.name for n in network.networks() if n.name == "provider"] == ["provider"]


def test_the_tunnel_endpoint_sits_on_br_phy_as_the_roles_put_it(three_node):
    healthy(three_node)
    for host, (address, _) in three_node.guide.nodes.items():
        if host == "controller":
            continue
        node = three_node.fleet.nodes[host]
        shown = {line.split()[1]: line.split()[3] for line in node.exec("ip", "-4", "-o", "addr").stdout.splitlines()}
        assert shown.get("br-phy") == address and "eth1" not in shown, shown
        assert "eth1" in node.vsctl("list-ports", "br-phy").stdout.split()


def test_a_broken_tunnel_is_named_as_the_tunnel_route(three_node):
    healthy(three_node)
    address = three_node.guide.nodes["compute1"][0]
    node = three_node.fleet.nodes["compute1"]
    try:
        # monitor mode: nodeagent reports what follows as drift and leaves it, so the break stays broken
        three_node.ctl("var", "set", "--node", "compute1", "mode", "monitor")
        wait_until(lambda: (three_node.node("compute1")["status"] or {}).get("mode") == "monitor", 60,
                   "compute1 in monitor mode")
        node.exec("ip", "addr", "add", address, "dev", "eth1")  # the endpoint back where the guide leaves it
        node.exec("ip", "addr", "del", address, "dev", "br-phy")
        code, rows = verify_traffic(three_node, "--node", "compute1")
        assert code == 1, rows
        failed = [r for r in rows if r["Result"] != "ok"]
        assert [(r["Host"], r["Check"], r["Hop"]) for r in failed] == [("compute1", "dhcp", "tunnel route")], rows
        assert "local_ip must sit on an OVS bridge" in failed[0]["Hint"]
        assert not leftovers(three_node)
    finally:
        three_node.ctl("var", "set", "--node", "compute1", "mode", "enforce")
    # enforce again: nodeagent moves the endpoint back onto br-phy, and packets flow
    wait_until(lambda: address in node.exec("ip", "-4", "-o", "addr", "show", "br-phy").stdout
               and address not in node.exec("ip", "-4", "-o", "addr", "show", "eth1").stdout, 60,
               "the tunnel endpoint back on br-phy")
    code, rows = verify_traffic(three_node, "--node", "compute1")
    assert code == 0, rows


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_probe_removes_everything_it_made(three_node, sig):
    healthy(three_node)
    program = Path(sys.executable).parent / "nodeagentctl"
    probe = subprocess.Popen([str(program), "--config-file", str(three_node.fleet.coordinator_conf), "verify",
                              "--traffic"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # interrupted once its stand-ins are plugged: a namespace on a node and a port in Neutron exist
        wait_until(lambda: any(n.startswith(NETNS_PREFIX) for n in in_node(
            three_node, "compute1", "ip", "netns", "list").stdout.split()) or probe.poll() is not None, 120,
            "a stand-in plugged", step=0.2)
        assert probe.poll() is None, probe.communicate()
        probe.send_signal(sig)
        probe.wait(60)
    finally:
        if probe.poll() is None:
            probe.kill()
    assert not leftovers(three_node)


def test_what_a_killed_probe_left_is_swept_by_the_next(three_node):
    healthy(three_node)
    program = Path(sys.executable).parent / "nodeagentctl"
    probe = subprocess.Popen([str(program), "--config-file", str(three_node.fleet.coordinator_conf), "verify",
                              "--traffic", "--node", "compute1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: any(n.startswith(NETNS_PREFIX) for n in in_node(
            three_node, "compute1", "ip", "netns", "list").stdout.split()), 120, "a stand-in plugged", step=0.2)
        time.sleep(1)  # its port in br-int too
    finally:
        probe.kill()
        probe.wait(10)
    assert leftovers(three_node)  # SIGKILL: no clean-up ran
    code, rows = verify_traffic(three_node, "--node", "compute1")
    assert code == 0, rows
    assert not leftovers(three_node)


def in_view(deployment: Deployment, host: str) -> NodeShell:
    """A shell in the node's view, as verify --traffic reaches it (probe_access)."""
    return NodeShell(host, deployment.probe_access(host))


def test_a_server_nova_boots_is_bound_plugged_and_reads_its_metadata(three_node):
    healthy(three_node)
    cloud = three_node.neutron.connection
    wait_until(lambda: [h.name for h in cloud.compute.hypervisors()] == ["compute1"], 180,
               "compute1 discovered as Nova's hypervisor")
    tag = secrets.token_hex(3)
    network = cloud.network.create_network(name=f"nova-test-{tag}")
    subnet = cloud.network.create_subnet(network_id=network.id, ip_version=4, cidr="198.19.252.0/24")
    router = cloud.network.create_router(name=f"nova-test-{tag}")
    cloud.network.add_interface_to_router(router, subnet_id=subnet.id)
    server = stand_in = None
    try:
        server, _ = labnova.boot(cloud, network.id, f"nova-test-{tag}")
        assert server.hypervisor_hostname == "compute1"
        # nova-compute bound the port through Neutron with nova.conf's [neutron] credentials (only an admin may)
        [port] = cloud.network.ports(device_id=server.id)
        assert (port.binding_host_id, port.binding_vif_type, port.device_owner) == ("compute1", "ovs", "compute:nova")
        assert port.status == "DOWN"  # the fake driver plugs nothing
        stand_in = StandIn(in_view(three_node, "compute1"), port, f"nova{tag}")
        stand_in.plug()
        wait_until(lambda: cloud.network.get_port(port.id).status == "ACTIVE", 60, "the server's port ACTIVE")
        # Neutron's [nova] notifier (the nova user, NOVA_PASS) told Nova, which handed the event to nova-compute
        log = three_node.fleet.directory / "compute1" / "systemd" / "nova-compute.log"
        wait_until(lambda: f"network-vif-plugged-{port.id}" in log.read_text(), 60,
                   "nova-compute receiving network-vif-plugged")
        assert stand_in.dhcp(), "no lease for the server's port"
        assert stand_in.address == port.fixed_ips[0]["ip_address"]
        # the router's proxy, network1's metadata agent and nova-metadata, which checks the shared secret
        url = "http://169.254.169.254/openstack/latest/meta_data.json"
        read = wait_until(lambda: stand_in.inside("busybox", "wget", "-q", "-O", "-", url, timeout=20).stdout, 60,
                          "the server's metadata")
        metadata = json.loads(read)
        assert (metadata["uuid"], metadata["name"]) == (server.id, server.name), metadata
    finally:
        if stand_in is not None:
            stand_in.remove()
        if server is not None:
            cloud.compute.delete_server(server)
            cloud.compute.wait_for_delete(server, wait=120)
        cloud.network.remove_interface_from_router(router, subnet_id=subnet.id)
        cloud.network.delete_router(router)
        cloud.network.delete_network(network)


def test_nova_compute_restarts_with_its_node_identity(three_node):
    healthy(three_node)
    compute = three_node.neutron.connection.compute
    wait_until(lambda: [h.name for h in compute.hypervisors()] == ["compute1"], 180, "compute1 as a hypervisor")
    [before] = compute.hypervisors()
    systemctl = three_node.fleet.systemds["compute1"].systemctl
    log = three_node.fleet.directory / "compute1" / "systemd" / "nova-compute.log"
    size = log.stat().st_size
    restarted = datetime.now(timezone.utc).replace(tzinfo=None).isoformat()
    subprocess.run([*systemctl, "restart", "nova-compute"], check=True, capture_output=True, timeout=60)

    def main_pid() -> str:
        return subprocess.run([*systemctl, "show", "-p", "MainPID", "--value", "nova-compute"], capture_output=True,
                              text=True, timeout=30).stdout.strip()
    pid = main_pid()
    # the restarted service reports itself alive to the conductor; a fake driver drawing a new node UUID per
    # process would have exited instead ('No local node identity found' / 'Duplicate compute node record')
    wait_until(lambda: [s.updated_at > restarted for s in compute.services(binary="nova-compute")] == [True], 120,
               "the restarted nova-compute reporting")
    assert main_pid() == pid != "0"
    assert " ERROR " not in log.read_text()[size:]
    assert [(h.id, h.name) for h in compute.hypervisors()] == [(before.id, "compute1")]


def test_a_wrong_metadata_secret_is_named_and_enforce_puts_it_back(three_node):
    healthy(three_node)
    ini = three_node.fleet.directory / "network1" / "root" / "etc" / "neutron" / "metadata_agent.ini"
    systemctl = three_node.fleet.systemds["network1"].systemctl
    try:
        # monitor mode: nodeagent reports the edit as drift and leaves it
        three_node.ctl("var", "set", "--node", "network1", "mode", "monitor")
        wait_until(lambda: (three_node.node("network1")["status"] or {}).get("mode") == "monitor", 60,
                   "network1 in monitor mode")
        ini.write_text(re.sub(r"(?m)^metadata_proxy_shared_secret = .*$", "metadata_proxy_shared_secret = wrong",
                              ini.read_text()))
        subprocess.run([*systemctl, "restart", "neutron-metadata-agent"], check=True, capture_output=True, timeout=60)
        code, rows = verify_traffic(three_node, "--node", "compute1")
        assert code == 1, rows
        failed = [(r["Host"], r["Check"], r["Target"], r["Hop"]) for r in rows if r["Result"] != "ok"]
        assert failed == [("compute1", "metadata", "169.254.169.254 (HTTP 403)", "metadata secret")], rows
        assert not leftovers(three_node)
    finally:
        three_node.ctl("var", "set", "--node", "network1", "mode", "enforce")
    # enforce again: the guide's secret back in the file, the agent restarted by the change, Nova answers
    wait_until(lambda: "= wrong" not in ini.read_text(), 60, "the shared secret back in metadata_agent.ini")
    # The file is back before the restart it notifies is over: until the metadata agent listens again, the
    # metadata check gets no answer (a loaded whole run saw that once). Looked at again until all is ok.
    deadline = time.monotonic() + 240
    code, rows = verify_traffic(three_node, "--node", "compute1")
    while code != 0 and time.monotonic() < deadline:
        time.sleep(5)
        code, rows = verify_traffic(three_node, "--node", "compute1")
    assert code == 0, rows


# Nova's API database's newest migration, and the one before it: cdeec0c85668 drops the legacy migrate_version table
# only if it is there, so running it a second time is what an upgrade's new migration looks like, harmlessly
NOVA_API_HEAD, NOVA_API_PREVIOUS = "cdeec0c85668", "b30f573d3377"


def test_a_nova_schema_behind_the_installed_nova_is_migrated_again(three_node):
    healthy(three_node)
    sql = three_node.cloud.sql

    def api_version() -> str:
        done = sql("SELECT version_num FROM nova_api.alembic_version")
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()
    assert api_version() == NOVA_API_HEAD, "the lab's Nova changed: pick its API database's newest migrations"
    # as after an upgrade to a release with one more migration: the schema one behind the installed code, cell1 there
    sql(f"UPDATE nova_api.alembic_version SET version_num = '{NOVA_API_PREVIOUS}'")
    try:
        # the agent's start is a full reconcile (as its periodic resync is): nova-db-sync's guard sees the schema
        # behind, and the step runs the syncs again
        three_node.fleet.stop("controller")
        three_node.fleet.start("controller")
        wait_until(lambda: api_version() == NOVA_API_HEAD, 300, "nova-manage api_db sync run again")
        wait_until(lambda: three_node.reconciled("controller"), 300, "the controller's reconcile")
        status = three_node.node("controller")["status"] or {}
        assert not status.get("failed"), status
    finally:
        if api_version() != NOVA_API_HEAD:
            sql(f"UPDATE nova_api.alembic_version SET version_num = '{NOVA_API_HEAD}'")
