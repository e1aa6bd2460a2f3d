"""The guides' original settings, file by file: every outdated key flagged, with what to write instead."""

from __future__ import annotations

import pytest
import yaml

from nodeagent.optionregistry import lint_document
from tests.conftest import DATA

GUIDES = yaml.safe_load((DATA / "guide-settings.yaml").read_text())
TRANSPORT, AUTHTOKEN, NO_KEYSTONE = "use [DEFAULT] transport_url", "auth_type = password", "reaches the server over RPC"

# (resource, section, key): (severity, what the message must name), for every release the registry covers.
ALWAYS = {
    **{("three-node-neutron-conf", "DEFAULT", key): ("error", TRANSPORT) for key in ("rpc_backend", "qpid_hostname")},
    ("three-node-neutron-conf", "DEFAULT", "nova_url"): ("error", "use the [nova] section"),
    ("three-node-neutron-conf", "DEFAULT", "nova_admin_username"): ("error", "[nova] username"),
    ("three-node-neutron-conf", "DEFAULT", "nova_admin_tenant_id"): ("error", "[nova] project_name"),
    ("three-node-neutron-conf", "DEFAULT", "nova_admin_password"): ("error", "[nova] password"),
    ("three-node-neutron-conf", "DEFAULT", "nova_admin_auth_url"): ("error", "[nova] auth_url"),
    **{(resource, "DEFAULT", "verbose"): ("error", "debug = true") for resource in (
        "three-node-neutron-conf", "three-node-l3-agent-ini", "three-node-dhcp-agent-ini",
        "three-node-metadata-agent-ini")},
    **{(resource, "keystone_authtoken", "auth_uri"): ("warning", "www_authenticate_uri")
       for resource in ("three-node-neutron-conf", "two-node-neutron-conf")},
    **{("three-node-neutron-conf", "keystone_authtoken", key): ("error", AUTHTOKEN) for key in (
        "auth_host", "auth_protocol", "auth_port", "admin_tenant_name", "admin_user", "admin_password")},
    ("three-node-ml2-conf", "ovs", "local_ip"): ("error", "option of openvswitch_agent.ini"),
    ("three-node-ml2-conf", "ovs", "tunnel_type"): ("error", "[agent] tunnel_types in openvswitch_agent.ini"),
    ("three-node-ml2-conf", "ovs", "enable_tunneling"): ("error", "[agent] tunnel_types"),
    **{(resource, "DEFAULT", "use_namespaces"): ("error", "always use network namespaces")
       for resource in ("three-node-l3-agent-ini", "three-node-dhcp-agent-ini")},
    **{("three-node-metadata-agent-ini", "DEFAULT", key): ("error", NO_KEYSTONE) for key in (
        "auth_url", "auth_region", "admin_tenant_name", "admin_user", "admin_password")},
    **{(resource, "DEFAULT", "nova_metadata_ip"): ("error", "use [DEFAULT] nova_metadata_host")
       for resource in ("three-node-metadata-agent-ini", "two-node-metadata-agent-ini")},
    ("three-node-nova-conf", "DEFAULT", "network_api_class"): ("error", "nova always uses neutron"),
    ("three-node-nova-conf", "DEFAULT", "neutron_url"): ("error", "[neutron] endpoint_override"),
    ("three-node-nova-conf", "DEFAULT", "neutron_auth_strategy"): ("error", "[neutron] auth_type = password"),
    ("three-node-nova-conf", "DEFAULT", "neutron_admin_tenant_name"): ("error", "[neutron] project_name"),
    ("three-node-nova-conf", "DEFAULT", "neutron_admin_username"): ("error", "[neutron] username"),
    ("three-node-nova-conf", "DEFAULT", "neutron_admin_password"): ("error", "[neutron] password"),
    ("three-node-nova-conf", "DEFAULT", "neutron_admin_auth_url"): ("error", "[neutron] auth_url"),
    ("three-node-nova-conf", "DEFAULT", "linuxnet_interface_driver"): ("error", "with nova-network"),
    ("three-node-nova-conf", "DEFAULT", "firewall_driver"): ("error", "neutron's security groups"),
    ("three-node-nova-conf", "DEFAULT", "security_group_api"): ("error", "neutron provides security groups"),
    ("three-node-nova-conf", "DEFAULT", "service_neutron_metadata_proxy"): ("error",
                                                                            "[neutron] service_metadata_proxy"),
    ("three-node-nova-conf", "DEFAULT", "neutron_metadata_proxy_shared_secret"): (
        "error", "[neutron] metadata_proxy_shared_secret"),
    ("two-node-neutron-conf", "DEFAULT", "allow_overlapping_ips"): ("error", "removed in Zed"),
    ("two-node-nova-conf", "neutron", "url"): ("error", "endpoint_override"),
}
# The Linux bridge agent and its plugins left in 2025.1.
LINUXBRIDGE_GONE = {
    ("two-node-ml2-conf", "ml2", "mechanism_drivers"): ("error", "'linuxbridge' is not a plugin"),
    ("two-node-linuxbridge-agent-ini", "", ""): ("error", "does not read linuxbridge_agent.ini at all"),
    **{(resource, "DEFAULT", "interface_driver"): ("error", "'linuxbridge' is not a plugin")
       for resource in ("two-node-l3-agent-ini", "two-node-dhcp-agent-ini")},
}


# In 2024.2 the Linux bridge mechanism driver is experimental: neutron-server exits unless it is enabled.
LINUXBRIDGE_EXPERIMENTAL = {("two-node-ml2-conf", "ml2", "mechanism_drivers"): (
    "error", "neutron.conf sets [experimental] linuxbridge = true")}


@pytest.mark.parametrize("release, expected", [("2024.2", {**ALWAYS, **LINUXBRIDGE_EXPERIMENTAL}),
                                               ("2025.2", {**ALWAYS, **LINUXBRIDGE_GONE})])
def test_every_outdated_guide_key_is_flagged_with_its_replacement(release, expected):
    found = {(f.resource, f.section, f.key): f for f in lint_document(GUIDES, release)}
    assert set(found) == set(expected), sorted(set(found) ^ set(expected))
    for place, (severity, replacement) in expected.items():
        assert found[place].severity == severity, found[place].describe()
        assert replacement in found[place].message, found[place].describe()
    removed_upstream = [f for f in found.values() if f.is_error and "does not read it: removed in" in f.message]
    assert all("(source: " in f.message for f in removed_upstream)  # every legacy row cites where it is recorded
    if release != "2024.2":
        assert "removed in 2025.1 (last in 2024.2)" in found[("two-node-ml2-conf", "ml2", "mechanism_drivers")].message


def test_no_finding_shows_a_secret_of_the_guides():
    text = "\n".join(f.describe() for release in ("2024.2", "2025.2") for f in lint_document(GUIDES, release))
    for secret in ("NEUTRON_PASS", "NOVA_PASS", "METADATA_SECRET", "RABBIT_PASS", "NEUTRON_DBPASS"):
        assert secret not in text
