"""The roles judged by OpenStack itself.

Each guide is deployed from the roles by a coordinator onto lab nodes that run the real units
(neutron-api + neutron-rpc-server 27 for 2025.2, neutron-server 25 for 2024.2, the real agents,
a real Keystone, MariaDB and RabbitMQ): Neutron must list every agent the roles run, alive, and
do real work with them. Each test first waits for the deployment to be healthy, so any test runs
alone or in any order; a test that breaks something leaves it mended.
"""

from __future__ import annotations

import configparser
import json
import re
import subprocess

import pytest

from nodeagent.testing import labguide
from nodeagent.testing.waiting import wait_until
from nodeagent.testing.labguide import Deployment, deployed

ALIVE_TIMEOUT = 300
# A deployment (the controller's schema migration and Keystone steps, then every agent) takes minutes.
pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def three_node(tmp_path_factory):
    with deployed(tmp_path_factory.mktemp("three-node"), labguide.three_node()) as deployment:
        yield deployment


def not_alive(checks) -> list[str]:
    return [f"{c.host}: {c.binary} {c.state}" for c in checks if not c.ok]


def healthy(deployment: Deployment):
    """Every expected agent alive (the precondition of each test), or the test fails saying which is not."""
    checks = deployment.wait_alive(ALIVE_TIMEOUT)
    assert not not_alive(checks), f"not alive in Neutron: {not_alive(checks)}"
    return checks


def in_node(deployment: Deployment, host: str, *command: str) -> subprocess.CompletedProcess:
    """A command in the node's own view (its mount and network namespaces: qdhcp-/qrouter- live there)."""
    pid = str(deployment.fleet.systemds[host].pid)
    return subprocess.run(["nsenter", "-t", pid, "-m", "-n", "--", *command], capture_output=True, text=True,
                          timeout=60)


def ini(deployment: Deployment, host: str, path: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.read(deployment.fleet.directory / host / "root" / path.lstrip("/"))
    return parser


def drift_records(deployment: Deployment, host: str, resource: str, state: str | None = None) -> list[dict]:
    """The node's drift records of ``resource`` (in ``state``), oldest first: a test compares with what it
    found at its start, so it sees its own drift whatever ran before it on the shared deployment."""
    rows = json.loads(deployment.ctl("drift", "list", "--node", host, "-f", "json").stdout)
    return [d for d in rows if d["Resource"] == resource and state in (None, d["State"])]


def test_three_node_guide_every_agent_alive_in_neutron(three_node):
    checks = healthy(three_node)
    assert sorted((c.host, c.binary) for c in checks) == [
        ("compute1", "neutron-openvswitch-agent"), ("network1", "neutron-dhcp-agent"),
        ("network1", "neutron-l3-agent"), ("network1", "neutron-metadata-agent"),
        ("network1", "neutron-openvswitch-agent")]
    # the operator's view: nodeagentctl says the same as Neutron
    rows = {r["Host"]: r for r in json.loads(three_node.ctl("node", "list", "-f", "json").stdout)}
    assert (rows["network1"]["Neutron"], rows["compute1"]["Neutron"]) == ("4/4", "1/1")
    verify = three_node.ctl("verify", "-f", "json", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert {r["State"] for r in json.loads(verify.stdout)} == {"alive"}


def web_pages(deployment: Deployment, paths: list[str]) -> dict[str, str]:
    """The web view's pages as a reader gets them (the app in this process, on the fleet's coordinator database)."""
    import base64

    from nodeagent.cli import config
    from nodeagent.fleet.coordinator import Coordinator
    from nodeagent.fleet.web import auth
    from nodeagent.fleet.web.app import make_app

    passwords = deployment.fleet.directory / "web-passwords"
    auth.set_password(passwords, "looker", "reader", "looker-pass")
    coordinator = Coordinator(config.make_conf([str(deployment.fleet.coordinator_conf)]))
    coordinator.conf.set_override("password_file", str(passwords), group="web")
    client = make_app(coordinator.conf, coordinator.inventory, coordinator.neutron).test_client()
    reader = {"Authorization": "Basic " + base64.b64encode(b"looker:looker-pass").decode()}
    answers = {path: client.get(path, headers=reader) for path in paths}
    assert {path: answer.status_code for path, answer in answers.items()} == {path: 200 for path in paths}
    return {path: answer.get_data(as_text=True) for path, answer in answers.items()}


def test_the_web_view_shows_neutrons_agents_and_no_secret(three_node):
    """The fleet page's Neutron column is node list's; the guide's secrets (hostile characters, rendered into every
    node's files) appear in no page, in no spelling."""
    import html
    from urllib.parse import quote

    healthy(three_node)
    conf = (three_node.fleet.directory / "network1/root/etc/neutron/neutron.conf").read_text()
    assert three_node.secrets["NEUTRON_PASS"].replace("$", "$$") in conf  # there to leak
    pages = web_pages(three_node, ["/", "/timeline?hours=168", "/events"] +
                      [f"/nodes/{host}" for host in three_node.guide.nodes])
    rows = dict(re.findall(r'<tr id="node-([^"]+)">(.*?)</tr>', pages["/"], re.S))
    assert "<th>Neutron agents alive</th>" in pages["/"]
    assert ("<td>4/4</td>" in rows["network1"], "<td>1/1</td>" in rows["compute1"]) == (True, True)
    for key, value in three_node.secrets.items():
        for spelling in {value, html.escape(value), quote(value, safe=""), value.replace("$", "$$")}:
            leaks = [path for path, page in pages.items() if spelling in page]
            assert not leaks, f"{key} in {leaks}"


def test_three_node_guide_the_server_runs_as_2025_2_ships_it(three_node):
    healthy(three_node)
    systemctl = three_node.fleet.systemds["controller"].systemctl
    for unit in ("neutron-api", "neutron-rpc-server", "neutron-periodic-workers"):
        state = subprocess.run([*systemctl, "is-active", unit], capture_output=True, text=True).stdout.strip()
        assert state == "active", unit
    assert not ini(three_node, "compute1", "/etc/neutron/neutron.conf").has_section("database")
    # the guide's keystone steps ran for real, once: one network service, three endpoints, the neutron user
    identity = three_node.neutron.connection.identity
    services = list(identity.services(type="network"))
    assert len(services) == 1
    assert sorted(e.interface for e in identity.endpoints(service_id=services[0].id)) == [
        "admin", "internal", "public"]
    assert identity.find_user("neutron", domain_id="default") is not None


def test_compute_node_gets_no_bridge_mapping_it_cannot_honour(three_node):
    # The first round's failure: compute wrote bridge_mappings = provider:br-ex and nothing made br-ex, so
    # its OVS agent logged "Bridge br-ex ... does not exist. Agent terminated!" and never registered.
    healthy(three_node)
    compute = ini(three_node, "compute1", "/etc/neutron/plugins/ml2/openvswitch_agent.ini")
    assert not compute.has_option("ovs", "bridge_mappings")
    network = ini(three_node, "network1", "/etc/neutron/plugins/ml2/openvswitch_agent.ini")
    assert network.get("ovs", "bridge_mappings") == "provider:br-ex"
    # eth2 is the port the role adds; the agent's own patch port to br-int is left alone (no purge_ports)
    assert sorted(three_node.fleet.nodes["network1"].vsctl("list-ports", "br-ex").stdout.split()) == [
        "eth2", "phy-br-ex"]


def test_three_node_guide_a_network_and_router_get_their_namespaces(three_node):
    healthy(three_node)
    network = three_node.neutron.connection.network
    net = network.create_network(name="selfservice")
    try:
        subnet = network.create_subnet(network_id=net.id, ip_version=4, cidr="198.19.10.0/24",
                                       gateway_ip="198.19.10.1", name="selfservice")
        router = network.create_router(name="router")
        network.add_interface_to_router(router, subnet_id=subnet.id)
        namespaces = wait_until(lambda: {f"qdhcp-{net.id}", f"qrouter-{router.id}"} <= set(
            in_node(three_node, "network1", "ip", "netns", "list").stdout.split()) and True, 120,
            "qdhcp- and qrouter- namespaces on network1")
        assert namespaces
        dhcp_port = wait_until(lambda: next((p for p in network.ports(network_id=net.id,
                                                                     device_owner="network:dhcp")
                                           if p.status == "ACTIVE"), None), 120, "an ACTIVE DHCP port")
        assert dhcp_port.binding_host_id == "network1"
        network.remove_interface_from_router(router, subnet_id=subnet.id)
        network.delete_router(router)
    finally:
        network.delete_network(net)


def test_a_drift_that_breaks_an_agent_is_corrected_and_the_agent_restarted(three_node):
    healthy(three_node)
    path = three_node.fleet.directory / "compute1" / "root" / "etc/neutron/neutron.conf"
    systemctl = three_node.fleet.systemds["compute1"].systemctl
    pid_before = subprocess.run([*systemctl, "show", "-p", "MainPID", "--value", "neutron-openvswitch-agent"],
                                capture_output=True, text=True).stdout.strip()
    text = path.read_text()
    before = len(drift_records(three_node, "compute1", "agent-neutron-conf"))
    path.write_text(text.replace("@controller:5672/", "@nowhere.invalid:5672/"))
    wait_until(lambda: "nowhere.invalid" not in path.read_text(), 30, "the wrong transport_url corrected")
    drift = wait_until(lambda: drift_records(three_node, "compute1", "agent-neutron-conf")[before:], 60,
                       "the drift record")
    assert "nowhere.invalid" not in json.dumps(drift)  # transport_url is a secret: never shown
    wait_until(lambda: subprocess.run([*systemctl, "show", "-p", "MainPID", "--value", "neutron-openvswitch-agent"],
                                    capture_output=True, text=True).stdout.strip() not in ("0", pid_before), 120,
             "the OVS agent restarted")
    healthy(three_node)


def test_monitor_mode_reports_a_stopped_agent_and_verify_names_it(three_node):
    healthy(three_node)
    systemctl = three_node.fleet.systemds["compute1"].systemctl
    left_before = len(drift_records(three_node, "compute1", "l2-agent", "left"))
    dead_before = len(json.loads(three_node.ctl("events", "--node", "compute1", "--type", "neutron.agent.dead",
                                                "-f", "json").stdout))
    try:
        three_node.ctl("var", "set", "--node", "compute1", "mode", "monitor")
        wait_until(lambda: (three_node.node("compute1")["status"] or {}).get("mode") == "monitor", 60,
                 "compute1 in monitor mode")
        subprocess.run([*systemctl, "stop", "neutron-openvswitch-agent"], check=True, capture_output=True,
                       timeout=60)
        wait_until(lambda: drift_records(three_node, "compute1", "l2-agent", "left")[left_before:], 60,
                   "the stopped agent reported as drift, left as found")
        # Neutron marks it dead after the server's agent_down_time (20 s in the lab, 75 s by default)
        verify = wait_until(lambda: (lambda done: done if done.returncode == 1 else None)(
            three_node.ctl("verify", "--node", "compute1", "-f", "json", check=False)), 150,
            "verify failing on the stopped agent")
        rows = json.loads(verify.stdout)
        assert [(r["Host"], r["Binary"], r["State"]) for r in rows] == [
            ("compute1", "neutron-openvswitch-agent", "dead")]
        assert "systemctl status neutron-openvswitch-agent" in rows[0]["Hint"]
        state = subprocess.run([*systemctl, "is-active", "neutron-openvswitch-agent"], capture_output=True,
                               text=True).stdout.strip()
        assert state != "active"  # monitor mode: reported, left as found
        # not alive for agent_alive_timeout (20 s in the lab): the coordinator raises the alert, once
        events = wait_until(lambda: [e for e in json.loads(three_node.ctl(
            "events", "--node", "compute1", "--type", "neutron.agent.dead", "-f", "json").stdout)[dead_before:]
            if "neutron-openvswitch-agent is dead in Neutron" in e["Detail"]], 90, "the neutron.agent.dead alert")
        assert len(events) == 1
    finally:
        three_node.ctl("var", "set", "--node", "compute1", "mode", "enforce")
    healthy(three_node)


def test_a_network_is_rescheduled_away_from_a_dead_dhcp_agent(three_node):
    """What neutron-periodic-workers does on 2025.2 (neutron-server did it itself before): a network whose DHCP
    agent stops reporting moves to a live one. A second DHCP agent runs on compute1 for the test (the lab's unit,
    network1's dhcp_agent.ini), hosts the network, and is stopped."""
    healthy(three_node)
    network = three_node.neutron.connection.network
    compute_root = three_node.fleet.directory / "compute1" / "root" / "etc" / "neutron"
    network_root = three_node.fleet.directory / "network1" / "root" / "etc" / "neutron"
    copies = [compute_root / name for name in ("dhcp_agent.ini", "dnsmasq-neutron.conf")]
    for copy in copies:
        copy.write_text((network_root / copy.name).read_text())
    systemctl = three_node.fleet.systemds["compute1"].systemctl
    subprocess.run([*systemctl, "start", "neutron-dhcp-agent"], check=True, capture_output=True, timeout=120)
    net = None
    try:
        agents = wait_until(lambda: (lambda found: found if len(found) == 2 else None)(
            {a.host: a for a in network.agents(agent_type="DHCP agent") if a.is_alive}), 120,
            "a DHCP agent alive on network1 and on compute1")
        net = network.create_network(name="rescheduled")
        network.create_subnet(network_id=net.id, ip_version=4, cidr="198.19.20.0/24", name="rescheduled")
        for host, agent in agents.items():  # hosted on compute1's agent only
            hosting = {a.id for a in network.network_hosting_dhcp_agents(net)}
            if host == "compute1" and agent.id not in hosting:
                network.add_dhcp_agent_to_network(agent, net)
            elif host != "compute1" and agent.id in hosting:
                network.remove_dhcp_agent_from_network(agent, net)
        assert [a.host for a in network.network_hosting_dhcp_agents(net)] == ["compute1"]

        subprocess.run([*systemctl, "stop", "neutron-dhcp-agent"], check=True, capture_output=True, timeout=60)
        # dead after 2 x agent_down_time (20 s in the lab), looked at every agent_down_time / 2
        hosts = wait_until(lambda: (lambda found: found if found == ["network1"] else None)(
            [a.host for a in network.network_hosting_dhcp_agents(net)]), 240,
            "the network moved from compute1's dead DHCP agent to network1's")
        assert hosts == ["network1"]
    finally:
        subprocess.run([*systemctl, "stop", "neutron-dhcp-agent"], capture_output=True, timeout=60)
        if net is not None:
            network.delete_network(net)
        for agent in network.agents(agent_type="DHCP agent", host="compute1"):
            network.delete_agent(agent)
        for copy in copies:
            copy.unlink(missing_ok=True)
    healthy(three_node)


def test_provider_networks_on_open_vswitch_push_and_bind_ports_on_compute(three_node):
    """Option 1 with Open vSwitch: no overlay in any agent ini, and a compute node's instance ports bind on the
    provider network (its agent maps it), which needs the node's provider_interface."""
    healthy(three_node)
    refused = three_node.ctl("var", "set", "network_option", "provider", check=False)
    assert refused.returncode != 0 and "set provider_interface" in refused.stderr, refused.stderr
    network = three_node.neutron.connection.network
    try:
        three_node.ctl("var", "set", "--node", "compute1", "provider_interface", "eth2")
        three_node.set_variable("network_option", "provider")
        checks = healthy(three_node)
        assert ("network1", "neutron-l3-agent") not in [(c.host, c.binary) for c in checks]
        assert not ini(three_node, "compute1", "/etc/neutron/plugins/ml2/openvswitch_agent.ini").has_option(
            "agent", "tunnel_types")
        net = network.create_network(name="provider", provider_network_type="flat",
                                     provider_physical_network="provider")
        try:
            network.create_subnet(network_id=net.id, ip_version=4, cidr="198.19.30.0/24", name="provider")
            port = network.create_port(network_id=net.id, name="stand-in-instance", binding_host_id="compute1")
            assert port.binding_vif_type == "ovs", port.binding_vif_type  # 'binding_failed' without the mapping
            network.delete_port(port)
        finally:
            network.delete_network(net)
    finally:  # mended: option 2, compute1 without a provider interface, its provider bridge gone
        three_node.set_variable("network_option", "self-service")
        three_node.set_variable_on("compute1", "provider_interface", "")
        three_node.fleet.nodes["compute1"].vsctl("--if-exists", "del-br", "br-ex")
    healthy(three_node)
