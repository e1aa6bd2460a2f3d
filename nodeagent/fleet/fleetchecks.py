"""Checks across the whole fleet before any push: settings that must agree between nodes.

Each check reads the ini settings the rendered documents would write, and names
the nodes, files and keys that disagree; secret values are never shown.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections import defaultdict
from typing import Any, Iterator

from nodeagent.optionregistry import Finding, lint_document

Setting = tuple[str, str, str, str, str]  # host, resource id, file name, section, key


def ini_settings(documents: dict[str, dict[str, Any]]) -> Iterator[tuple[Setting, str]]:
    for host, document in sorted(documents.items()):
        for resource in document.get("resources", []):
            if resource.get("driver") != "ini":
                continue
            name = posixpath.basename(resource["path"])
            for section, options in (resource.get("settings") or {}).items():
                for key, value in options.items():
                    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
                    yield (host, resource["id"], name, section, key), text


def option_findings(documents: dict[str, dict[str, Any]], releases: dict[str, str]) -> list[Finding]:
    """Each node's OpenStack options checked against its target release (nodeagent.optionregistry)."""
    return [dataclasses.replace(finding, node=host) for host, document in sorted(documents.items())
            for finding in lint_document(document, releases.get(host))]


def check_fleet(documents: dict[str, dict[str, Any]], releases: dict[str, str] | None = None) -> list[str]:
    """Everything that disagrees, and (given each node's release) every option error, as sentences."""
    settings = list(ini_settings(documents))

    def where(files: set[tuple[str, str]], section: str, key: str) -> list[tuple[str, str]]:
        return [(f"{s[0]} {s[2]} [{s[3]}] {s[4]}", v) for s, v in settings
                if (s[2], s[3]) in files and s[4] == key and (section == "*" or s[3] == section)]

    problems = []
    problems += _agree("metadata_proxy_shared_secret",
                       where({("metadata_agent.ini", "DEFAULT"), ("nova.conf", "neutron")}, "*",
                             "metadata_proxy_shared_secret"), secret=True)
    problems += _agree("transport_url", where({("neutron.conf", "DEFAULT"), ("nova.conf", "DEFAULT")}, "DEFAULT",
                                              "transport_url"), secret=True)
    for key in ("type_drivers", "tenant_network_types", "mechanism_drivers"):
        problems += _agree(key, where({("ml2_conf.ini", "ml2")}, "ml2", key))
    problems += _agree("vni_ranges", where({("ml2_conf.ini", "ml2_type_vxlan")}, "ml2_type_vxlan", "vni_ranges"))
    problems += _agree("tunnel_id_ranges", where({("ml2_conf.ini", "ml2_type_gre")}, "ml2_type_gre",
                                                 "tunnel_id_ranges"))
    problems += _overlays_known_to_the_server(settings)
    problems += _unique_overlay_addresses(settings)
    problems += _one_value_per_file_key(settings)
    if releases is not None:
        problems += option_errors(documents, releases)
    return problems


def option_errors(documents: dict[str, dict[str, Any]], releases: dict[str, str]) -> list[str]:
    """The option findings that block a push (an option the release does not have), one line each."""
    return [f.describe() for f in option_findings(documents, releases) if f.is_error]


def _agree(what: str, found: list[tuple[str, str]], secret: bool = False) -> list[str]:
    values = {value for _, value in found}
    if len(values) <= 1:
        return []
    if secret:
        groups: dict[str, list[str]] = defaultdict(list)
        for place, value in found:
            groups[value].append(place)
        shown = " | ".join(", ".join(places) for places in groups.values())
        return [f"{what} differs between: {shown} (values hidden)"]
    return [f"{what} differs: " + "; ".join(f"{place} = {value}" for place, value in found)]


def _overlays_known_to_the_server(settings: list[tuple[Setting, str]]) -> list[str]:
    server = {v for s, v in settings if s[2] == "ml2_conf.ini" and s[3] == "ml2" and s[4] == "type_drivers"}
    if not server:
        return []
    allowed = set(",".join(server).split(","))
    problems = []
    for s, value in settings:
        if s[2] == "openvswitch_agent.ini" and s[3] == "agent" and s[4] == "tunnel_types":
            unknown = set(filter(None, value.split(","))) - allowed
            if unknown:
                problems.append(f"{s[0]} openvswitch_agent.ini [agent] tunnel_types = {value}: the server's "
                                f"ml2 type_drivers ({', '.join(sorted(server))}) lack {', '.join(sorted(unknown))}")
        if s[2] == "linuxbridge_agent.ini" and s[3] == "vxlan" and s[4] == "enable_vxlan" \
                and value == "true" and "vxlan" not in allowed:
            problems.append(f"{s[0]} linuxbridge_agent.ini enables VXLAN but the server's ml2 type_drivers "
                            f"({', '.join(sorted(server))}) lack vxlan")
    return problems


def _unique_overlay_addresses(settings: list[tuple[Setting, str]]) -> list[str]:
    owners: dict[str, set[str]] = defaultdict(set)
    for s, value in settings:
        if s[4] == "local_ip" and s[3] in ("ovs", "vxlan"):
            owners[value].add(s[0])
    return [f"overlay address {address} is local_ip of several nodes: {', '.join(sorted(hosts))}"
            for address, hosts in sorted(owners.items()) if len(hosts) > 1]


def _one_value_per_file_key(settings: list[tuple[Setting, str]]) -> list[str]:
    seen: dict[tuple[str, str, str, str], tuple[str, str]] = {}
    problems = []
    for s, value in settings:
        key = (s[0], s[2], s[3], s[4])
        if key in seen and seen[key][1] != value:
            problems.append(f"{s[0]} {s[2]} [{s[3]}] {s[4]} is set differently by resources '{seen[key][0]}' "
                            f"and '{s[1]}'")
        seen.setdefault(key, (s[1], value))
    return problems
