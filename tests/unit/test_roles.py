"""Rendering the guides' roles, and the fleet checks that stop an inconsistent push."""

from __future__ import annotations

import pytest

from nodeagent.fleet.escapes import url_userinfo
from nodeagent.fleet.fleetchecks import check_fleet
from nodeagent.document.model import parse_document
from nodeagent.fleet.roles import RoleError, Roles
from tests.conftest import REPO

SECRETS = {k: f"{k.lower()}-s3cret" for k in ("RABBIT_PASS", "NEUTRON_PASS", "NEUTRON_DBPASS", "NOVA_PASS",
                                              "NOVA_DBPASS", "PLACEMENT_PASS", "PLACEMENT_DBPASS",
                                              "METADATA_SECRET", "ADMIN_PASS")}
FACTS = {"interfaces": {"eth1": {"ipv4": ["198.18.1.11/24"]}, "eth2": {"ipv4": []}}}
NODE_VARS = {"overlay_interface": "eth1", "external_interface": "eth2", "provider_interface": "eth2"}


@pytest.fixture
def roles():
    return Roles(REPO / "etc" / "roles")


def settings(document, resource_id):
    return next(r for r in document["resources"] if r["id"] == resource_id)["settings"]


@pytest.mark.parametrize("variables", [
    {},  # three-node guide, modern: Open vSwitch + VXLAN
    {"overlay": "gre"},  # three-node guide as written: Open vSwitch + GRE
    {"mechanism": "linuxbridge", "openstack_release": "2024.2"},  # two-node guide
    {"network_option": "provider", "mechanism": "linuxbridge", "openstack_release": "2024.2"},
])
def test_every_role_renders_a_valid_document(roles, registry, variables):
    for names in (["controller"], ["network"], ["compute"], ["controller", "network"]):
        body = roles.render("n1", names, {**variables, **NODE_VARS}, SECRETS, FACTS)
        document = parse_document({"node": "n1", **body}, registry)
        assert document.resources


def test_modern_option_names_are_written(roles):
    controller = roles.render("c", ["controller"], {}, SECRETS, FACTS)
    neutron = settings(controller, "controller-neutron-conf")
    assert neutron["keystone_authtoken"]["www_authenticate_uri"] == "http://controller:5000"
    assert "auth_uri" in next(r for r in controller["resources"] if r["id"] == "controller-neutron-conf")[
        "absent"]["keystone_authtoken"]
    assert neutron["DEFAULT"]["transport_url"] == "rabbit://openstack:rabbit_pass-s3cret@controller:5672/"
    assert "allow_overlapping_ips" not in neutron["DEFAULT"]  # removed in Zed: written nowhere, removed if found
    assert "allow_overlapping_ips" in next(r for r in controller["resources"]
                                           if r["id"] == "controller-neutron-conf")["absent"]["DEFAULT"]
    network = roles.render("n", ["network"], NODE_VARS, SECRETS, FACTS)
    assert settings(network, "metadata-agent-ini")["DEFAULT"]["nova_metadata_host"] == "controller"
    assert settings(network, "l3-agent-ini")["DEFAULT"]["interface_driver"] == "openvswitch"
    assert settings(network, "openvswitch-agent-ini")["ovs"]["local_ip"] == "198.18.1.11"


def test_gre_uses_tunnel_ranges_and_the_guides_mtu(roles):
    controller = roles.render("c", ["controller"], {"overlay": "gre"}, SECRETS, FACTS)
    ml2 = settings(controller, "controller-ml2-conf")
    assert ml2["ml2"]["type_drivers"] == "flat,vlan,gre" and ml2["ml2_type_gre"]["tunnel_id_ranges"] == "1:1000"
    network = roles.render("n", ["network"], {"overlay": "gre", **NODE_VARS}, SECRETS, FACTS)
    dnsmasq = next(r for r in network["resources"] if r["id"] == "dnsmasq-neutron")
    assert dnsmasq["content"] == "dhcp-option-force=26,1454\n"


@pytest.mark.parametrize("variables, secrets, facts, message", [
    ({}, SECRETS, FACTS, "role 'compute' for node 'n1': variable 'overlay_interface' is not set"),
    (NODE_VARS, {}, FACTS, "needs secret 'RABBIT_PASS' (nodeagentctl secret set RABBIT_PASS)"),
    ({**NODE_VARS, "overlay_interface": "eth9"}, SECRETS, FACTS,
     "names interface eth9, which node 'n1' does not have (it has: eth1, eth2)"),
    ({**NODE_VARS, "overlay_interface": "eth2"}, SECRETS, FACTS, "interface eth2 of node 'n1' has no IPv4 address"),
    (NODE_VARS, SECRETS, {}, "node 'n1' has not reported its interfaces yet"),
    ({**NODE_VARS, "mechanism": "linuxbridge"}, SECRETS, FACTS,
     "openstack_release 2025.1: mechanism 'linuxbridge' (the Linux bridge agent, [linux_bridge] and [vxlan] "
     "options) was removed from Neutron in 2025.1; use mechanism 'openvswitch'"),
    ({**NODE_VARS, "mechanism": "linuxbridge", "openstack_release": "2024.2", "overlay": "gre"}, SECRETS, FACTS,
     "mechanism 'linuxbridge' carries overlays as VXLAN only"),
    ({**NODE_VARS, "overlay": "geneve"}, SECRETS, FACTS, "variable 'overlay' must be one of vxlan, gre"),
    ({**NODE_VARS, "openstack_release": "zed"}, SECRETS, FACTS, "variable 'openstack_release' must look like"),
    ({**NODE_VARS, "probes": "gw=icmp:198.18.0.1"}, SECRETS, FACTS,
     "variable 'probes': 'gw=icmp:198.18.0.1' is not ID=ping:ADDRESS or ID=tcp:HOST:PORT"),
    ({**NODE_VARS, "rollback_timeout": "soon"}, SECRETS, FACTS,
     "variable 'rollback_timeout' must be a number of seconds, got 'soon'"),
])
def test_missing_or_wrong_inputs_are_errors_that_name_them(roles, variables, secrets, facts, message):
    with pytest.raises(RoleError) as caught:
        roles.render("n1", ["compute"], variables, secrets, facts)
    assert message in str(caught.value)


def test_unknown_role(roles):
    with pytest.raises(RoleError, match=r"no role 'storage' \(roles: compute, controller, network\)"):
        roles.render("n1", ["storage"], NODE_VARS, SECRETS, FACTS)


def fleet(roles, overrides=None):
    overrides = overrides or {}
    hosts = {"controller": ["controller"], "network1": ["network"], "compute1": ["compute"]}
    facts = {"controller": FACTS, "network1": {"interfaces": {"eth1": {"ipv4": ["198.18.1.21/24"]}, "eth2": {}}},
             "compute1": {"interfaces": {"eth1": {"ipv4": ["198.18.1.31/24"]}, "eth2": {}}}}
    return {host: roles.render(host, names, {**NODE_VARS, **overrides.get(host, {})}, SECRETS, facts[host])
            for host, names in hosts.items()}


def test_a_consistent_fleet_passes(roles):
    assert check_fleet(fleet(roles)) == []


def _set(documents, host, resource_id, section, key, value):
    settings(documents[host], resource_id)[section][key] = value
    return documents


@pytest.mark.parametrize("change, message", [
    (("network1", "metadata-agent-ini", "DEFAULT", "metadata_proxy_shared_secret", "other"),
     "metadata_proxy_shared_secret differs between"),
    (("compute1", "agent-neutron-conf", "DEFAULT", "transport_url", "rabbit://x@elsewhere"),
     "transport_url differs between"),
    (("network1", "openvswitch-agent-ini", "agent", "tunnel_types", "gre"),
     "network1 openvswitch_agent.ini [agent] tunnel_types = gre: the server's ml2 type_drivers"),
    (("compute1", "openvswitch-agent-ini", "ovs", "local_ip", "198.18.1.21"),
     "overlay address 198.18.1.21 is local_ip of several nodes: compute1, network1"),
])
def test_each_inconsistency_is_named(roles, change, message):
    problems = check_fleet(_set(fleet(roles), *change))
    assert any(message in p for p in problems), problems
    assert not any("s3cret" in p or "other" == p for p in problems)


def test_two_controllers_with_different_ranges_are_refused(roles):
    documents = fleet(roles)
    documents["controller2"] = roles.render("controller2", ["controller"], {"vni_ranges": "1:500"}, SECRETS, FACTS)
    problems = check_fleet(documents)
    assert any(p.startswith("vni_ranges differs: controller ml2_conf.ini [ml2_type_vxlan] vni_ranges = 1:1000")
               for p in problems), problems


def test_secret_values_never_appear_in_problems(roles):
    documents = _set(fleet(roles), "network1", "metadata-agent-ini", "DEFAULT", "metadata_proxy_shared_secret",
                     "leaked-value")
    assert "leaked-value" not in " ".join(check_fleet(documents))


def test_the_controller_has_its_one_time_steps_guarded_and_masked(roles, registry):
    body = roles.render("c", ["controller"], {}, SECRETS, FACTS)
    steps = {r["id"]: r for r in body["resources"] if r["driver"] == "command"}
    assert set(steps) == {"neutron-database", "neutron-db-upgrade", "keystone-neutron"}
    assert all(not steps[s].get("refresh_only") and steps[s]["unless"] for s in steps)  # guarded, not one-shot
    assert all(steps[s]["sensitive"] == ["environment"] for s in ("neutron-database", "keystone-neutron"))
    text = repr(body["resources"])
    for resource_id in ("neutron-database", "keystone-neutron", "neutron-db-upgrade"):
        assert "s3cret" not in repr(steps[resource_id]["command"]) + repr(steps[resource_id]["unless"])
    assert "CREATE USER IF NOT EXISTS" in steps["neutron-database"]["command"]  # MySQL 8 has no GRANT ... IDENTIFIED BY
    assert "UNHEX" in steps["neutron-database"]["command"]  # the password is never SQL
    assert steps["neutron-database"]["environment"] == {"NEUTRON_DBPASS": SECRETS["NEUTRON_DBPASS"]}
    assert "s3cret" in text  # the secret is there, in the environment only
    conf = next(r for r in body["resources"] if r["id"] == "controller-neutron-conf")
    assert conf["notify"] == ["neutron-server", "neutron-database", "keystone-neutron"]  # 2025.1: neutron-server
    servers = [r for r in body["resources"] if r["id"] == "neutron-server"]
    assert servers[0]["after"] == ["plugin-ini", "neutron-db-upgrade"]  # the schema is at head before it starts
    off = roles.render("c", ["controller"], {"manage_database": "false", "manage_keystone": "false"}, SECRETS, FACTS)
    assert not [r for r in off["resources"] if r["driver"] == "command"]


@pytest.mark.parametrize("release, units", [("2024.2", ["neutron-server"]), ("2025.1", ["neutron-server"]),
                                            ("2025.2", ["neutron-api", "neutron-rpc-server",
                                                        "neutron-periodic-workers"])])
def test_the_server_units_follow_the_release(roles, release, units):
    body = roles.render("c", ["controller"], {"openstack_release": release}, SECRETS, FACTS)
    services = [r["name"] for r in body["resources"] if r["driver"] == "service" and r["id"].startswith("neutron")]
    assert services == units


def test_unit_names_follow_the_distribution(roles):
    debian = roles.render("n1", ["compute"], NODE_VARS, SECRETS, FACTS)
    rdo = roles.render("n1", ["compute"], {**NODE_VARS, "distribution": "rdo"}, SECRETS, FACTS)
    names = [{r["id"]: r["name"] for r in body["resources"] if r["driver"] == "service"} for body in (debian, rdo)]
    assert (names[0]["nova-compute"], names[1]["nova-compute"]) == ("nova-compute", "openstack-nova-compute")
    assert (names[0]["openvswitch"], names[1]["openvswitch"]) == ("openvswitch-switch", "openvswitch")


@pytest.mark.parametrize("variables", [{}, {"provider_interface": "eth2"}, {"provider_bridge": "br-provider"}])
def test_every_bridge_an_ovs_agent_maps_is_made_on_that_node(roles, registry, variables):
    # The first round's compute role mapped provider:br-ex and nothing made br-ex: the real agent never registered.
    for role in ("compute", "network"):
        body = roles.render("n1", [role], {"overlay_interface": "eth1", "external_interface": "eth2", **variables},
                            SECRETS, FACTS)
        ovs = settings(body, "openvswitch-agent-ini")["ovs"]
        mapped = {pair.split(":")[1] for pair in ovs.get("bridge_mappings", "").split(",") if pair}
        made = {r["name"]: r["id"] for r in body["resources"] if r["driver"] == "ovs_bridge"}
        assert mapped <= set(made), (role, variables, mapped, made)
        order = parse_document({"node": "n1", **body}, registry).order  # and made before the agent starts
        assert all(order.index(made[bridge]) < order.index("l2-agent") for bridge in mapped | {"br-int"})
    compute = roles.render("n1", ["compute"], {"overlay_interface": "eth1"}, SECRETS, FACTS)
    assert "bridge_mappings" not in settings(compute, "openvswitch-agent-ini")["ovs"]


def test_option_1_deploys_no_l3_agent_and_only_the_gre_guide_writes_the_dnsmasq_mtu(roles):
    provider = roles.render("n", ["network"], {**NODE_VARS, "network_option": "provider"}, SECRETS, FACTS)
    ids = {r["id"] for r in provider["resources"]}
    assert not ids & {"l3-agent", "l3-agent-ini", "dnsmasq-neutron"}
    conf = next(r for r in provider["resources"] if r["id"] == "agent-neutron-conf")
    assert conf["notify"] == ["l2-agent", "dhcp-agent", "metadata-agent"]


def test_compute_nodes_do_not_keep_a_database_connection(roles):
    body = roles.render("n1", ["compute"], NODE_VARS, SECRETS, FACTS)
    conf = next(r for r in body["resources"] if r["id"] == "agent-neutron-conf")
    assert conf["absent"]["database"] == ["connection"]


def test_the_linux_bridge_server_gets_its_experimental_flag(roles):
    body = roles.render("c", ["controller"], {"mechanism": "linuxbridge", "openstack_release": "2024.2"},
                        SECRETS, FACTS)
    neutron = settings(body, "controller-neutron-conf")
    assert neutron["experimental"] == {"linuxbridge": True}


HOSTILE = ['quo"te', "co:lon # not a comment", "sin'gle", "back\\slash", "{flow: [x]}", "a\"\n  injected: true\nb: \"",
           "tab\there", "\u00e9t\u00e9 \U0001f511", "*alias &anchor !tag"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_every_variable_is_escaped_for_yaml(roles, registry, hostile):
    secrets = {**SECRETS, "RABBIT_PASS": hostile, "NEUTRON_PASS": hostile}
    body = roles.render("n", ["network"], NODE_VARS, secrets, FACTS)
    neutron = settings(body, "agent-neutron-conf")
    assert neutron["DEFAULT"]["transport_url"] == f"rabbit://openstack:{url_userinfo(hostile)}@controller:5672/"
    assert neutron["keystone_authtoken"]["password"] == hostile
    assert "injected" not in neutron and all("injected" not in s for s in neutron.values())
    if "\n" in hostile:  # a line break in a secret is refused by the ini driver, naming the field
        with pytest.raises(Exception, match="field 'settings.keystone_authtoken.password' must not contain control"):
            parse_document({"node": "n", **body}, registry)
    else:
        parse_document({"node": "n", **body}, registry)


def test_the_yaml_filter_writes_a_whole_scalar_for_unquoted_places():
    from jinja2.sandbox import SandboxedEnvironment

    from nodeagent.fleet.roles import yaml_escape, yaml_scalar

    env = SandboxedEnvironment(finalize=yaml_escape)
    env.filters["yaml"] = yaml_scalar
    text = env.from_string("a: {{ v | yaml }}\nb: \"{{ v }}\"\nc: {{ n }}\nd: {{ l }}\n").render(
        v="x: y\n- z", n=1454, l=["l2-agent", "l3-agent"])
    import yaml

    assert yaml.safe_load(text) == {"a": "x: y\n- z", "b": "x: y\n- z", "c": 1454, "d": ["l2-agent", "l3-agent"]}


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_keystone_steps_clouds_yaml_carries_the_admin_password_verbatim(roles, hostile):
    import yaml

    body = roles.render("c", ["controller"], {}, {**SECRETS, "ADMIN_PASS": hostile}, FACTS)
    clouds = yaml.safe_load(next(r for r in body["resources"] if r["id"] == "admin-clouds-yaml")["content"])
    assert clouds["clouds"]["admin"]["auth"]["password"] == hostile


@pytest.mark.parametrize("variables, modules", [
    ({}, ["br_netfilter", "openvswitch"]),                        # Open vSwitch on the kernel datapath
    ({"datapath_type": "netdev"}, ["br_netfilter"]),              # the userspace datapath needs no module
    ({"mechanism": "linuxbridge", "openstack_release": "2024.2"}, ["br_netfilter"]),
])
def test_agents_load_their_kernel_modules_before_the_bridge_sysctls(roles, registry, variables, modules):
    for role in ("network", "compute"):
        body = roles.render("n1", [role], {**variables, **NODE_VARS}, SECRETS, FACTS)
        loaded = next(r for r in body["resources"] if r["id"] == "kernel-modules")
        assert loaded["modules"] == modules and loaded["persist"] == "/etc/modules-load.d/90-neutron.conf"
        order = parse_document({"node": "n1", **body}, registry).order
        assert order.index("kernel-modules") < order.index("bridge-filter-sysctls") < order.index("l2-agent")


def test_nova_conf_loses_the_guides_nova_network_keys_on_the_controller_as_on_compute(roles):
    gone = {"linuxnet_interface_driver", "firewall_driver", "security_group_api"}
    for role in ("controller", "compute"):
        nova = next(r for r in roles.render("n", [role], NODE_VARS, SECRETS, FACTS)["resources"]
                    if r["id"] == "nova-conf-neutron")
        assert gone <= set(nova["absent"]["DEFAULT"]), role


def test_open_vswitch_with_provider_networks_renders_and_passes_the_fleet_checks(roles, registry):
    variables = {"network_option": "provider"}
    compute_vars = {**NODE_VARS, "provider_interface": "eth2"}
    bodies = {"c": roles.render("c", ["controller"], variables, SECRETS, FACTS),
              "n": roles.render("n", ["network"], {**variables, **NODE_VARS}, SECRETS, FACTS),
              "k": roles.render("k", ["compute"], {**variables, **compute_vars}, SECRETS, FACTS)}
    assert check_fleet({host: {"node": host, **body} for host, body in bodies.items()}) == []
    for host in ("n", "k"):
        agent = next(r for r in bodies[host]["resources"] if r["id"] == "openvswitch-agent-ini")
        assert "tunnel_types" not in agent["settings"]["agent"] and "tunnel_types" in agent["absent"]["agent"]
        assert agent["settings"]["ovs"]["bridge_mappings"] == "provider:br-ex"
        assert "local_ip" not in agent["settings"]["ovs"]  # no overlay: no overlay address needed
        parse_document({"node": host, **bodies[host]}, registry)


def test_a_compute_node_on_provider_networks_needs_its_provider_interface(roles):
    with pytest.raises(RoleError, match="role 'compute' for node 'k': network_option 'provider' puts instances on "
                                        "the provider network only, .* set provider_interface"):
        roles.render("k", ["compute"], {"network_option": "provider", **NODE_VARS, "provider_interface": ""},
                     SECRETS, FACTS)
    # with self-service networks an empty provider_interface is none: no provider bridge, no mapping
    body = roles.render("k", ["compute"], {**NODE_VARS, "provider_interface": ""}, SECRETS, FACTS)
    assert "br-provider" not in [r["id"] for r in body["resources"]]


def resource(document, resource_id):
    return next((r for r in document["resources"] if r["id"] == resource_id), None)


@pytest.mark.parametrize("role", ["network", "compute"])
def test_on_the_userspace_datapath_the_tunnel_endpoint_moves_onto_an_ovs_bridge(roles, registry, role):
    variables = {"datapath_type": "netdev", "overlay": "gre", **NODE_VARS}
    body = roles.render("n1", [role], variables, SECRETS, FACTS)
    document = parse_document({"node": "n1", **body}, registry)
    bridge, added, removed = (resource(body, r) for r in ("overlay-bridge", "overlay-address",
                                                          "overlay-address-off-interface"))
    assert (bridge["name"], bridge["datapath_type"], bridge["ports"]) == ("br-phy", "netdev", ["eth1"])
    assert (added["interface"], added["address"], added["link"]) == ("br-phy", "198.18.1.11/24", "up")
    assert (removed["interface"], removed["address"], removed["state"]) == ("eth1", "198.18.1.11/24", "absent")
    # never without the address: on the bridge before it leaves the interface; the agent starts after both
    order = list(document.order)
    assert order.index("overlay-bridge") < order.index("overlay-address") < order.index(
        "overlay-address-off-interface") < order.index("l2-agent")
    assert settings(body, "openvswitch-agent-ini")["ovs"]["local_ip"] == "198.18.1.11"
    # once moved, the facts show the address on the bridge: the same document renders (nothing to fix first)
    moved = {"interfaces": {"eth1": {"ipv4": []}, "eth2": {"ipv4": []}, "br-phy": {"ipv4": ["198.18.1.11/24"]}}}
    assert roles.render("n1", [role], variables, SECRETS, moved) == body
    renamed = roles.render("n1", [role], {**variables, "overlay_bridge": "br-tep"}, SECRETS, moved | {
        "interfaces": {**moved["interfaces"], "br-tep": moved["interfaces"]["br-phy"], "br-phy": {"ipv4": []}}})
    assert resource(renamed, "overlay-address")["interface"] == "br-tep"


def test_the_kernel_datapath_leaves_the_overlay_interface_alone(roles):
    body = roles.render("n1", ["compute"], {"overlay": "gre", **NODE_VARS}, SECRETS, FACTS)
    assert not [r for r in body["resources"] if r["id"].startswith("overlay-") or r["driver"] == "address"]


def test_an_overlay_address_found_nowhere_is_an_error_naming_both_places(roles):
    bare = {"interfaces": {"eth1": {"ipv4": []}, "eth2": {"ipv4": []}}}
    with pytest.raises(RoleError, match="interface eth1 nor br-phy of node 'n1' has no IPv4 address"):
        roles.render("n1", ["compute"], {"datapath_type": "netdev", **NODE_VARS}, SECRETS, bare)


PROVIDER = {"provider_network_cidr": "198.19.67.0/24", "provider_network_gateway": "198.19.67.1"}


def test_the_provider_network_is_made_once_when_its_variables_are_set(roles, registry):
    assert resource(roles.render("c", ["controller"], {}, SECRETS, FACTS), "provider-network") is None
    body = roles.render("c", ["controller"], {**PROVIDER, "provider_network_pool": "198.19.67.100-198.19.67.200",
                                              "openstack_release": "2025.2"}, SECRETS, FACTS)
    parse_document({"node": "c", **body}, registry)
    step = resource(body, "provider-network")
    assert step["environment"] == {"OS_CLOUD": "admin", "NAME": "provider", "CIDR": "198.19.67.0/24",
                                   "GATEWAY": "198.19.67.1", "POOL": "198.19.67.100-198.19.67.200"}
    assert step["after"] == ["neutron-api", "neutron-rpc-server", "neutron-periodic-workers", "admin-clouds-yaml"]
    assert step["unless"]  # guarded: run only while the network or its subnet is missing


@pytest.mark.parametrize("variables, message", [
    ({"provider_network_cidr": "198.19.67.0/33", "provider_network_gateway": "198.19.67.1"},
     "variable 'provider_network_cidr' must be an IPv4 network"),
    ({"provider_network_cidr": "198.19.67.0/24"}, "variable 'provider_network_gateway' is not set"),
    ({**PROVIDER, "provider_network_gateway": "198.19.68.1"},
     "variable 'provider_network_gateway' must be an address in 198.19.67.0/24"),
    ({**PROVIDER, "provider_network_pool": "198.19.67.100"}, "variable 'provider_network_pool' must be START-END"),
    ({**PROVIDER, "provider_network_pool": "198.19.67.100-198.18.0.1"},
     "variable 'provider_network_pool' must be an address in 198.19.67.0/24"),
])
def test_bad_provider_network_variables_are_refused_naming_them(roles, variables, message):
    with pytest.raises(RoleError, match=message):
        roles.render("c", ["controller"], variables, SECRETS, FACTS)


def role_packages(body) -> dict[str, tuple[str, dict]]:
    return {r["id"]: (r["manager"], r["packages"]) for r in body["resources"] if r["driver"] == "package"}


INSTALLED = "installed"


def test_the_agents_tools_are_installed_always_and_come_before_everything(roles, registry):
    """radvd (IPv6 routers) and dhcp_release (leases) failed under Tempest when the host lacked them."""
    network = roles.render("n", ["network"], {**NODE_VARS, "openstack_packages": "false"}, SECRETS, FACTS)
    [(manager, wanted)] = role_packages(network).values()
    assert manager == "apt"
    assert wanted == dict.fromkeys(["iptables", "ipset", "conntrack", "openvswitch-switch", "dnsmasq-base",
                                    "dnsmasq-utils", "haproxy", "radvd", "iputils-arping"], INSTALLED)
    order = parse_document({"node": "n", **network}, registry).order
    assert order[0] == "network-packages"
    compute = roles.render("k", ["compute"], {**NODE_VARS, "openstack_packages": "false"}, SECRETS, FACTS)
    assert role_packages(compute) == {"compute-packages": ("apt", dict.fromkeys(
        ["iptables", "ipset", "conntrack", "openvswitch-switch"], INSTALLED))}
    # the controller runs no agent: with the services off it has nothing to install
    assert role_packages(roles.render("c", ["controller"], {"openstack_packages": "false"}, SECRETS, FACTS)) == {}


def test_option_1_has_no_l3_agent_and_no_radvd(roles):
    network = roles.render("n", ["network"], {**NODE_VARS, "network_option": "provider"}, SECRETS, FACTS)
    [(_, wanted)] = role_packages(network).values()
    assert "radvd" not in wanted and "neutron-l3-agent" not in wanted
    assert {"dnsmasq-utils", "neutron-dhcp-agent", "neutron-metadata-agent"} <= set(wanted)


@pytest.mark.parametrize("variables, expected", [
    ({}, {"controller-packages": ["neutron-server"],
          "network-packages": ["neutron-openvswitch-agent", "neutron-dhcp-agent", "neutron-metadata-agent",
                               "neutron-l3-agent"],
          "compute-packages": ["neutron-openvswitch-agent"]}),
    ({"openstack_release": "2025.2"}, {"controller-packages": ["neutron-api", "neutron-rpc-server"]}),
    ({"mechanism": "linuxbridge", "openstack_release": "2024.2"},
     {"network-packages": ["ebtables", "neutron-linuxbridge-agent"], "compute-packages": ["ebtables"]}),
    # the guides' yum install lines: openstack-neutron openstack-neutron-ml2 openstack-neutron-openvswitch
    ({"distribution": "rdo"}, {"controller-packages": ["openstack-neutron", "openstack-neutron-ml2"],
                               "network-packages": ["openstack-neutron", "openstack-neutron-ml2",
                                                    "openstack-neutron-openvswitch", "dnsmasq", "dnsmasq-utils",
                                                    "radvd", "conntrack-tools", "openvswitch"],
                               "compute-packages": ["openstack-neutron-ml2", "openstack-neutron-openvswitch"]}),
])
def test_the_openstack_services_are_installed_by_their_distribution_names(roles, registry, variables, expected):
    found = {}
    for role in ("controller", "network", "compute"):
        body = roles.render("n", [role], {**NODE_VARS, **variables}, SECRETS, FACTS)
        found.update(role_packages(body))
        parse_document({"node": "n", **body}, registry)  # the driver accepts every name
    for resource, names in expected.items():
        manager, wanted = found[resource]
        assert manager == ("dnf" if variables.get("distribution") == "rdo" else "apt")
        assert set(names) <= set(wanted) and all(wanted[name] == INSTALLED for name in names), (resource, wanted)


def test_openstack_packages_false_leaves_the_services_to_whoever_installs_them(roles):
    for role in ("network", "compute"):
        body = roles.render("n", [role], {**NODE_VARS, "openstack_packages": "false"}, SECRETS, FACTS)
        [(_, wanted)] = role_packages(body).values()
        assert not [name for name in wanted if name.startswith(("neutron", "openstack-"))]


def test_a_bad_openstack_packages_value_is_refused_naming_it(roles):
    with pytest.raises(RoleError, match="variable 'openstack_packages' must be one of true, false, got 'yes'"):
        roles.render("n", ["network"], {**NODE_VARS, "openstack_packages": "yes"}, SECRETS, FACTS)


def test_an_unknown_distribution_is_refused_naming_it(roles):
    """Package (and unit) names exist for Debian/Ubuntu and RDO only: anything else is refused before a push."""
    with pytest.raises(RoleError, match="variable 'distribution' must be one of debian, rdo, got 'arch'"):
        roles.render("n", ["network"], {**NODE_VARS, "distribution": "arch"}, SECRETS, FACTS)


def test_manage_nova_adds_the_nova_and_placement_guides_one_time_steps_on_the_controller(roles, registry):
    off = roles.render("c", ["controller"], {}, SECRETS, FACTS)
    assert not {"placement-conf", "nova-databases", "nova-db-sync", "keystone-nova", "placement-api"} & {
        r["id"] for r in off["resources"]}
    body = roles.render("c", ["controller"], {"manage_nova": "true"}, SECRETS, FACTS)
    parse_document({"node": "c", **body}, registry)
    steps = {r["id"]: r for r in body["resources"]}
    nova_conf = steps["nova-conf-neutron"]["settings"]
    assert nova_conf["database"]["connection"] == "mysql+pymysql://nova:nova_dbpass-s3cret@controller/nova"
    assert nova_conf["api_database"]["connection"].endswith("@controller/nova_api")
    assert nova_conf["DEFAULT"]["transport_url"].startswith("rabbit://openstack:rabbit_pass-s3cret@controller")
    assert steps["placement-conf"]["settings"]["placement_database"]["connection"] == (
        "mysql+pymysql://placement:placement_dbpass-s3cret@controller/placement")
    # the database passwords reach the server hex-encoded from the environment, never as SQL
    assert "UNHEX" in steps["nova-databases"]["command"] and "s3cret" not in steps["nova-databases"]["command"]
    assert steps["nova-databases"]["environment"] == {"NOVA_DBPASS": "nova_dbpass-s3cret",
                                                      "PLACEMENT_DBPASS": "placement_dbpass-s3cret"}
    # cell0's URL is given (nova-manage would un-percent-encode a derived one); cell1 last, the step's guard
    sync = steps["nova-db-sync"]
    assert sync["environment"]["CELL0"].endswith("@controller/nova_cell0")
    steps_run = [line.strip() for line in sync["command"].splitlines() if "-manage " in line]
    assert steps_run[-1].endswith("cell_v2 create_cell --name=cell1") and "cell1" in sync["unless"]
    # run again when a schema is behind the installed code (an upgrade), not only when cell1 is missing
    assert sync["unless"].count("get_current_head") == 2 and "db version" in sync["unless"]
    assert sync["after"] == ["nova-databases", "keystone-nova"]
    assert steps["keystone-nova"]["environment"]["PLACEMENT_PASS"] == "placement_pass-s3cret"
    # placement answers before the conductor and scheduler start (they exit otherwise)
    for name in ("nova-api", "nova-scheduler", "nova-conductor"):
        assert steps[name]["after"] == ["nova-db-sync", "placement-api"]
    assert steps["placement-api"]["after"] == ["nova-db-sync"]


def test_probes_and_the_rollback_timeout_come_from_variables_into_a_valid_document(roles, registry):
    variables = {**NODE_VARS, "probes": "gw=ping:198.18.1.1, neutron-api=tcp:controller:9696",
                 "rollback_timeout": "30"}
    body = roles.render("n1", ["compute"], variables, SECRETS, FACTS)
    assert body["probes"] == [{"id": "gw", "ping": "198.18.1.1"}, {"id": "neutron-api", "tcp": "controller:9696"}]
    document = parse_document({"node": "n1", "generation": 1, **body}, registry)
    assert [p.id for p in document.probes] == ["gw", "neutron-api"] and document.rollback_timeout == 30
    assert "probes" not in roles.render("n1", ["compute"], NODE_VARS, SECRETS, FACTS)  # none unless asked


def test_a_probe_the_document_refuses_names_it(roles, registry):
    body = roles.render("n1", ["compute"], {**NODE_VARS, "probes": "gw=ping:not an address"}, SECRETS, FACTS)
    with pytest.raises(Exception, match="gw"):
        parse_document({"node": "n1", "generation": 1, **body}, registry)
