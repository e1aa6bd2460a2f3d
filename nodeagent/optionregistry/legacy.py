"""Keys that left before the oldest release the registry data covers, with what replaced them.

The generated data only knows what 2024.2 and later read; the install guides are
older. Every row cites where the removal is recorded: a release note (path in the
project's repository) or the commit (project and short hash) that removed the key.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class LegacyKey:
    """``[section] key`` (a glob) of a service, removed upstream in ``removed``; use ``replacement``."""

    service: str
    section: str
    key: str
    removed: str
    replacement: str
    source: str

    def message(self) -> str:
        return f"removed in {self.removed}; {self.replacement} (source: {self.source})"


_AUTHTOKEN = ("use [keystone_authtoken] auth_type = password with auth_url, username, password, project_name, "
              "user_domain_name and project_domain_name")
_KSM_V2 = ("keystonemiddleware 8.0.0 release note releasenotes/notes/removed-as-of-ussuri-4e1ea485ba8801c9.yaml "
           "(Identity v2.0 support and its admin settings removed)")
_NOVA_NEUTRON = "nova commit c4489643b3 'Neutron: remove deprecated config options' (deprecated in Juno)"

TABLE: tuple[LegacyKey, ...] = (
    # -- messaging (oslo.messaging, read by every service) ----------------------------------------
    *(LegacyKey(service, "DEFAULT", "rpc_backend", "oslo.messaging 9.0.0 (Stein)",
                "use [DEFAULT] transport_url = rabbit://USER:PASS@HOST",
                "oslo.messaging release note releasenotes/notes/removal-deprecated-options-6d4c5db90525c52d.yaml")
      for service in ("neutron", "nova", "keystone")),
    *(LegacyKey(service, "DEFAULT", "qpid_*", "oslo.messaging 3.0.0 (Mitaka): the qpid driver was removed",
                "use [DEFAULT] transport_url = rabbit://USER:PASS@HOST (RabbitMQ)",
                "oslo.messaging ChangeLog 3.0.0 'Remove qpidd's driver from the tree'; neutron commit da72b2646d")
      for service in ("neutron", "nova", "keystone")),
    *(LegacyKey(service, "*", "verbose", "oslo.log 3.22.0 (Pike)",
                "drop it: INFO is the default level; use [DEFAULT] debug = true for more",
                "oslo.log release note releasenotes/notes/remove-verbose-option-d0d1381e182d1be1.yaml")
      for service in ("neutron", "nova", "keystone")),
    *(LegacyKey(service, "keystone_authtoken", key, "keystonemiddleware 8.0.0 (Ussuri)", _AUTHTOKEN, _KSM_V2)
      for service in ("neutron", "nova", "keystone")
      for key in ("auth_host", "auth_port", "auth_protocol", "auth_admin_prefix", "identity_uri", "admin_token",
                  "admin_user", "admin_password", "admin_tenant_name")),
    # -- neutron ----------------------------------------------------------------------------------
    LegacyKey("neutron", "DEFAULT", "nova_metadata_ip", "Queens (neutron 12.0.0)",
              "use [DEFAULT] nova_metadata_host (an IP address or a host name)",
              "neutron release note releasenotes/notes/rename-to-nova-metadata-ip-685fd81618c16d9d.yaml; "
              "neutron commit cb9f4dd451 'Remove deprecated nova_metadata_ip'"),
    LegacyKey("neutron", "DEFAULT", "use_namespaces", "Mitaka (neutron 8.0.0)",
              "drop it: agents always use network namespaces",
              "neutron commit 23b907bc6e 'Remove deprecated use_namespaces option'; "
              "release note releasenotes/notes/remove-router_id-b3732089f8f1faa1.yaml"),
    LegacyKey("neutron", "DEFAULT", "router_id", "Newton (neutron 9.0.0)",
              "drop it: it served use_namespaces = false only",
              "neutron release note releasenotes/notes/remove-router_id-b3732089f8f1faa1.yaml; "
              "neutron commit 448bc8e522 'Remove the deprecated config 'router_id''"),
    LegacyKey("neutron", "DEFAULT", "allow_overlapping_ips", "Zed (neutron 21.0.0)",
              "drop it: overlapping IPs are always allowed",
              "neutron release note releasenotes/notes/Remove-deprecated-option-allow_overlapping_ips-"
              "49a93f56d51d6427.yaml; neutron commit fde91e8059"),
    LegacyKey("neutron", "DEFAULT", "external_network_bridge", "Rocky (neutron 13.0.0)",
              "drop it: the router gateway port is plugged into br-int and wired by the L2 agent "
              "(bridge_mappings)",
              "neutron release note releasenotes/notes/external_network_bridge-option-removed-bbf50fb803f04f82.yaml"),
    *(LegacyKey("neutron", "DEFAULT", key, "Mitaka (neutron 8.0.0)",
                f"use the [nova] section: {new}",
                "neutron commit 26f008296b 'Remove deprecated nova_* options'")
      for key, new in (("nova_url", "the endpoint comes from the catalog ([nova] region_name, endpoint_type)"),
                       ("nova_admin_username", "[nova] username"), ("nova_admin_password", "[nova] password"),
                       ("nova_admin_tenant_id", "[nova] project_name (or project_id)"),
                       ("nova_admin_tenant_name", "[nova] project_name"),
                       ("nova_admin_auth_url", "[nova] auth_url with auth_type = password"),
                       ("nova_region_name", "[nova] region_name"), ("nova_api_insecure", "[nova] insecure"),
                       ("nova_ca_certificates_file", "[nova] cafile"))),
    *(LegacyKey("neutron", "DEFAULT", key, "Mitaka (neutron 8.0.0)",
                "drop it: the metadata agent reaches the server over RPC and no longer signs in to Keystone",
                "neutron commit e5cd4a9f54 'Removed neutronclient option from metadata agent'")
      for key in ("auth_url", "auth_region", "admin_tenant_name", "admin_user", "admin_password", "auth_insecure",
                  "auth_ca_cert", "endpoint_type", "auth_strategy_metadata")),
    LegacyKey("neutron", "ovs", "enable_tunneling", "Kilo (neutron 2015.1)",
              "drop it: tunnelling is on when [agent] tunnel_types is set (openvswitch_agent.ini)",
              "neutron commit 77860af483 'openvswitch/ofagent: Remove OVS.enable_tunneling option'"),
    LegacyKey("neutron", "ovs", "tunnel_type", "Kilo (neutron 2015.1)",
              "use [agent] tunnel_types in openvswitch_agent.ini",
              "neutron commit 105dba9add 'openvswitch: Remove no longer used options'"),
    # -- nova -------------------------------------------------------------------------------------
    *(LegacyKey("nova", "DEFAULT", key, "Kilo (nova 2015.1)", f"use [neutron] {new}", _NOVA_NEUTRON)
      for key, new in (("neutron_url", "endpoint_override (or let the catalog find the endpoint)"),
                       ("neutron_auth_strategy", "auth_type = password"),
                       ("neutron_admin_tenant_name", "project_name"), ("neutron_admin_tenant_id", "project_id"),
                       ("neutron_admin_username", "username"), ("neutron_admin_password", "password"),
                       ("neutron_admin_auth_url", "auth_url"), ("neutron_region_name", "region_name"),
                       ("neutron_url_timeout", "timeout"), ("neutron_api_insecure", "insecure"),
                       ("neutron_ca_certificates_file", "cafile"),
                       ("service_neutron_metadata_proxy", "service_metadata_proxy"),
                       ("neutron_metadata_proxy_shared_secret", "metadata_proxy_shared_secret"))),
    LegacyKey("nova", "neutron", "url", "Train (nova 20.0.0)",
              "drop it (the catalog gives the endpoint) or use [neutron] endpoint_override",
              "nova commit 8f53a051cc 'Remove deprecated [neutron]/url option'"),
    LegacyKey("nova", "DEFAULT", "network_api_class", "Newton (nova 14.0.0)",
              "drop it: nova always uses neutron",
              "nova commit d82db52a09 'Remove deprecated network_api_class option'"),
    LegacyKey("nova", "DEFAULT", "security_group_api", "Newton (nova 14.0.0)",
              "drop it: neutron provides security groups",
              "nova commit 34eed4a4d4 'Remove deprecated security_group_api config option'"),
    LegacyKey("nova", "DEFAULT", "linuxnet_interface_driver", "Train (nova 20.0.0), with nova-network",
              "drop it: neutron's agents plug the interfaces", "nova commit f5f73b4c4e 'nova-net: Kill it'"),
    LegacyKey("nova", "DEFAULT", "firewall_driver", "Ussuri (nova 21.0.0), with nova-network's firewall",
              "drop it: neutron's security groups filter traffic",
              "nova commit 9b321e41f6 'nova-net: Remove firewall support (pt. 3)'"),
)


def find(service: str, section: str, key: str) -> LegacyKey | None:
    """The table's row for a key, if it left before the registry's oldest release."""
    for row in TABLE:
        if row.service == service and row.section in ("*", section) and fnmatch.fnmatchcase(key, row.key):
            return row
    return None
