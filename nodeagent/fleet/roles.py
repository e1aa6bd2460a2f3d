"""Roles: the install guides as templates that the coordinator renders into each node's document.

Templates (``roles_dir/<role>.yaml.j2``) render with Jinja2's sandbox and strict
undefined variables: a missing variable, secret or interface is an error naming
it, the role and the node, never an empty string in a configuration file.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment

from nodeagent.document import loading
from nodeagent.fleet import escapes
from nodeagent.fleet.errors import RoleError

# What every deployment has unless the operator says otherwise ('nodeagentctl var set').
DEFAULTS: dict[str, Any] = {
    "openstack_release": "2025.1",
    "controller_host": "controller",
    "mechanism": "openvswitch",
    "overlay": "vxlan",
    "network_option": "self-service",
    "region": "RegionOne",
    "vni_ranges": "1:1000",
    "tunnel_id_ranges": "1:1000",
    "provider_bridge": "br-ex",
    "datapath_type": "system",
    "overlay_bridge": "br-phy",              # datapath_type netdev: the OVS bridge that holds the tunnel endpoint
    "mode": "enforce",                       # enforce: fix drift; monitor: only report it
    "distribution": "debian",                # debian | rdo: the names of the service units
    "rabbit_user": "openstack",
    "rabbit_vhost": "",                      # the guides use RabbitMQ's default vhost
    "manage_database": "true",               # the controller creates neutron's database and grants
    "mysql_command": "mysql",
    "manage_keystone": "true",               # ... and neutron's keystone user, service and endpoints
    "os_cloud": "admin",                     # the clouds.yaml entry the openstack CLI uses for that
    "manage_nova": "false",                  # the controller also does the Nova and Placement guides' one-time steps
    "provider_network_name": "provider",     # with provider_network_cidr: the external network the controller makes
    "openstack_packages": "true",            # the OpenStack services from the distribution's packages (false: they
                                             # come from elsewhere, as in the lab); the agents' tools always
}
CHOICES = {"mechanism": ("openvswitch", "linuxbridge"), "overlay": ("vxlan", "gre"),
           "manage_database": ("true", "false"), "manage_keystone": ("true", "false"), "manage_nova": ("true", "false"),
           "network_option": ("provider", "self-service"), "datapath_type": ("system", "netdev"),
           "distribution": ("debian", "rdo"), "mode": ("enforce", "monitor"), "openstack_packages": ("true", "false")}
# Units whose name differs by distribution (Debian/Ubuntu name -> RDO name).
RDO_UNITS = {"nova-api": "openstack-nova-api", "nova-compute": "openstack-nova-compute",
             "nova-scheduler": "openstack-nova-scheduler", "nova-conductor": "openstack-nova-conductor",
             "openvswitch-switch": "openvswitch"}
# Packages whose name differs by distribution (Debian/Ubuntu name -> RDO names): the agents' tools, and the
# services as RDO splits them (one openstack-neutron for the server and the L3, DHCP and metadata agents; the
# guides' yum install steps).
RDO_PACKAGES = {"dnsmasq-base": ["dnsmasq"], "conntrack": ["conntrack-tools"], "iputils-arping": ["iputils"],
                "openvswitch-switch": ["openvswitch"],
                "neutron-server": ["openstack-neutron", "openstack-neutron-ml2"],
                "neutron-api": ["openstack-neutron", "openstack-neutron-ml2"],
                "neutron-rpc-server": ["openstack-neutron", "openstack-neutron-ml2"],
                "neutron-l3-agent": ["openstack-neutron"], "neutron-dhcp-agent": ["openstack-neutron"],
                "neutron-metadata-agent": ["openstack-neutron"],
                "neutron-openvswitch-agent": ["openstack-neutron-ml2", "openstack-neutron-openvswitch"],
                "neutron-linuxbridge-agent": ["openstack-neutron-ml2", "openstack-neutron-linuxbridge"]}
ROLE_ORDER = ("controller", "network", "compute")
# from 2025.2 neutron-server is gone: neutron-api (WSGI), neutron-rpc-server, neutron-periodic-workers
API_SPLIT = (2025, 2)
LINUXBRIDGE_REMOVED = (2025, 1)


class _Quoted(str):
    """A value already written as a whole YAML scalar (by the ``yaml`` filter): printed as is."""


def yaml_escape(value: Any) -> str:
    """What every ``{{ ... }}`` prints: safe inside a YAML double-quoted string.

    The templates put values between double quotes ("rabbit://openstack:{{ secret('RABBIT_PASS') }}@..."),
    so a quote, backslash or line break in a secret must be escaped or it would end the string and
    write YAML of its own. Printable text without '"' or '\\' is unchanged, so plain contexts
    (``- id: {{ name }}-agent``) keep working for the names they hold; lists and numbers print as
    YAML flow values (JSON). Jinja2 calls this as ``finalize`` on every printed expression.
    """
    if isinstance(value, _Quoted):
        return value
    if not isinstance(value, str):
        return json.dumps(value, default=str)
    return "".join(_escape_char(c) for c in value)


def yaml_scalar(value: Any) -> _Quoted:
    """The ``yaml`` filter: a value as a complete double-quoted YAML scalar, for unquoted places
    (``region: {{ region | yaml }}``)."""
    return _Quoted(f'"{yaml_escape(str(value) if not isinstance(value, str) else value)}"')


def _escape_char(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if char.isprintable():  # false for controls, \x85, \u2028, \u2029: YAML would fold or break on them
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def release(value: Any) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{4})\.(\d)", str(value))
    if not match:
        raise RoleError(f"variable 'openstack_release' must look like 2024.2 or 2025.1, got {value!r}")
    return int(match.group(1)), int(match.group(2))


def variable_probes(variables: dict[str, Any]) -> list[dict[str, str]]:
    """The ``probes`` variable as document probes: ``gw=ping:198.18.0.1,api=tcp:controller:9696`` (the
    document's own checks then name a bad address or port)."""
    found = []
    for item in filter(None, (part.strip() for part in str(variables.get("probes") or "").split(","))):
        name, _, target = item.partition("=")
        kind, _, where = target.partition(":")
        if not name or kind not in ("ping", "tcp") or not where:
            raise RoleError(f"variable 'probes': '{item}' is not ID=ping:ADDRESS or ID=tcp:HOST:PORT "
                            "(e.g. gw=ping:198.18.0.1,neutron-api=tcp:controller:9696)")
        found.append({"id": name.strip(), kind: where.strip()})
    return found


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RoleError(f"variable '{name}' must be a number of seconds, got {value!r}") from None


def check_variables(variables: dict[str, Any]) -> None:
    """Choices the templates rely on, and what the target release no longer has."""
    for name, choices in CHOICES.items():
        if variables.get(name) not in choices:
            raise RoleError(f"variable '{name}' must be one of {', '.join(choices)}, got {variables.get(name)!r}")
    target = release(variables["openstack_release"])
    if variables["mechanism"] == "linuxbridge" and target >= LINUXBRIDGE_REMOVED:
        raise RoleError(f"openstack_release {variables['openstack_release']}: mechanism 'linuxbridge' (the Linux "
                        "bridge agent, [linux_bridge] and [vxlan] options) was removed from Neutron in 2025.1; "
                        "use mechanism 'openvswitch', or openstack_release 2024.2 or older")
    if "provider_network_cidr" in variables:
        _check_provider_network(variables)
    if variables["mechanism"] == "linuxbridge" and variables["overlay"] != "vxlan":
        raise RoleError("mechanism 'linuxbridge' carries overlays as VXLAN only: set overlay to 'vxlan'")


def role_values(variables: dict[str, Any]) -> dict[str, Any]:
    """What the templates render from: the defaults under the node's variables, checked, and what follows."""
    values = {**DEFAULTS, **variables}
    check_variables(values)
    if "instance_mtu" not in values:  # the guide's 1454 leaves room for GRE; VXLAN needs 50 bytes
        values["instance_mtu"] = 1454 if values["overlay"] == "gre" else 1450
    return values


def _check_provider_network(variables: dict[str, Any]) -> None:
    """The provider network's variables, checked before they reach Neutron (a subnet cannot be changed later)."""
    try:
        cidr = ipaddress.IPv4Network(str(variables["provider_network_cidr"]))
    except ValueError:
        raise RoleError("variable 'provider_network_cidr' must be an IPv4 network such as 198.19.67.0/24, got "
                        f"{variables['provider_network_cidr']!r}") from None
    addresses = {"provider_network_gateway": variables.get("provider_network_gateway")}
    if addresses["provider_network_gateway"] is None:
        raise RoleError("variable 'provider_network_gateway' is not set: provider_network_cidr needs it (the "
                        "upstream router's address)")
    pool = str(variables.get("provider_network_pool") or "")
    if pool:
        if pool.count("-") != 1:
            raise RoleError(f"variable 'provider_network_pool' must be START-END, got {pool!r}")
        addresses.update(zip(("provider_network_pool start", "provider_network_pool end"), pool.split("-")))
    for name, value in addresses.items():
        try:
            inside = ipaddress.IPv4Address(str(value).strip()) in cidr
        except ValueError:
            inside = False
        if not inside:
            raise RoleError(f"variable '{name.split()[0]}' must be an address in {cidr}, got {value!r}")


class Roles:
    """The role templates of one directory."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.env = SandboxedEnvironment(loader=FileSystemLoader(str(self.directory)), undefined=StrictUndefined,
                                        keep_trailing_newline=True, autoescape=False, finalize=yaml_escape)
        self.env.filters["yaml"] = yaml_scalar
        self.env.filters.update(escapes.FILTERS)  # secrets escaped for where they land: ini, URL, PyMySQL

    def names(self) -> list[str]:
        return sorted(p.name[:-len(".yaml.j2")] for p in self.directory.glob("*.yaml.j2")
                      if not p.name.startswith("_"))

    def version(self) -> tuple[tuple[str, int, int], ...]:
        """What the templates are now: each file's name, size and modification time (what Jinja2 reloads a
        template on), through symbolic links as Jinja2 opens them. A render made under another version may
        differ."""
        found, seen = [], set()
        for top, folders, files in os.walk(self.directory, followlinks=True):
            status = os.stat(top)
            if (status.st_dev, status.st_ino) in seen:  # a link back up: walked once
                folders.clear()
                continue
            seen.add((status.st_dev, status.st_ino))
            for name in files:
                path = os.path.join(top, name)
                try:
                    status = os.stat(path)
                except OSError:  # removed while listed, or a dangling link: the next version says so
                    continue
                found.append((os.path.relpath(path, self.directory), status.st_size, status.st_mtime_ns))
        return tuple(sorted(found))

    def source(self, role: str) -> str:
        self._require(role)
        return (self.directory / f"{role}.yaml.j2").read_text()

    def variables(self, role: str) -> list[str]:
        """Variables a role reads (its includes too), without the helper functions."""
        names: set[str] = set()
        pending, seen = [f"{role}.yaml.j2"], set()
        while pending:
            template = pending.pop()
            seen.add(template)
            parsed = self.env.parse(self.env.loader.get_source(self.env, template)[0])
            names |= meta.find_undeclared_variables(parsed)
            pending += [t for t in meta.find_referenced_templates(parsed) if t and t not in seen]
        return sorted(names - set(HELPERS) - {"node", "name", "role"})

    def render(self, host: str, roles: list[str], variables: dict[str, Any], secrets: dict[str, str],
               facts: dict[str, Any]) -> dict[str, Any]:
        """The document body (resources) for ``host`` with ``roles``."""
        values = role_values(variables)
        resources: dict[str, tuple[str, dict[str, Any]]] = {}
        probes = {probe["id"]: ("variable 'probes'", probe) for probe in variable_probes(values)}
        # The server's role first: where one node has several, its services start (and restart) before the
        # agents that call it.
        for role in sorted(roles, key=lambda r: ROLE_ORDER.index(r) if r in ROLE_ORDER else len(ROLE_ORDER)):
            text = self.text(host, role, values, secrets, facts)
            body = loading.loads(text, f"role '{role}' for node '{host}'", fast=True) or {}
            for resource in body.get("resources") or []:
                earlier = resources.get(resource["id"])
                if earlier and earlier[1] != resource:
                    raise RoleError(f"roles '{earlier[0]}' and '{role}' both define resource '{resource['id']}' "
                                    f"for node '{host}', differently")
                resources.setdefault(resource["id"], (role, resource))
            for probe in body.get("probes") or []:  # the document's checks name a malformed one
                key = str(probe.get("id")) if isinstance(probe, dict) else repr(probe)
                earlier = probes.get(key)
                if earlier and earlier[1] != probe:
                    raise RoleError(f"{earlier[0]} and role '{role}' both define probe '{key}' for node "
                                    f"'{host}', differently")
                probes.setdefault(key, (f"role '{role}'", probe))
        body = {"mode": values["mode"], "resources": [resource for _, resource in resources.values()]}
        if probes:  # what must still answer after a network change (the agent's connectivity guard)
            body["probes"] = [probe for _, probe in probes.values()]
        if values.get("rollback_timeout") not in (None, ""):
            body["rollback_timeout"] = _number("rollback_timeout", values["rollback_timeout"])
        return body

    def text(self, host: str, role: str, values: dict[str, Any], secrets: dict[str, str],
             facts: dict[str, Any]) -> str:
        """The YAML text one role renders to for ``host`` (``values``: the defaults and variables, checked)."""
        self._require(role)
        _check_role(host, role, values)
        context = {**values, "node": host, "role": role, **_helpers(host, role, values, secrets, facts)}
        try:
            return self.env.get_template(f"{role}.yaml.j2").render(context)
        except escapes.Unwritable as exc:
            raise RoleError(f"role '{role}' for node '{host}': {exc}") from None
        except UndefinedError as exc:
            name = re.search(r"'([^']+)' is undefined", str(exc))
            variable = name.group(1) if name else str(exc)
            raise RoleError(f"role '{role}' for node '{host}': variable '{variable}' is not set "
                            f"(nodeagentctl var set --node {host} {variable} VALUE)") from None

    def _require(self, role: str) -> None:
        try:
            self.env.get_template(f"{role}.yaml.j2")
        except TemplateNotFound:
            raise RoleError(f"no role '{role}' (roles: {', '.join(self.names())})") from None


def _check_role(host: str, role: str, values: dict[str, Any]) -> None:
    """What one role needs of its node beyond a variable being set."""
    if (role == "compute" and values["mechanism"] == "openvswitch" and values["network_option"] == "provider"
            and not values.get("provider_interface")):
        raise RoleError(f"role 'compute' for node '{host}': network_option 'provider' puts instances on the provider "
                        "network only, and their ports bind where the node's Open vSwitch agent maps it: set "
                        f"provider_interface (nodeagentctl var set --node {host} provider_interface IFACE)")


def _helpers(host: str, role: str, values: dict[str, Any], secrets: dict[str, str],
             facts: dict[str, Any]) -> dict[str, Any]:
    interfaces = (facts or {}).get("interfaces")

    def secret(name: str) -> str:
        if name not in secrets:
            raise RoleError(f"role '{role}' for node '{host}' needs secret '{name}' (nodeagentctl secret set {name})")
        return secrets[name]

    def interface(name: str) -> str:
        if interfaces is None:
            raise RoleError(f"node '{host}' has not reported its interfaces yet; role '{role}' needs '{name}'")
        if name not in interfaces:
            raise RoleError(f"role '{role}' names interface {name}, which node '{host}' does not have "
                            f"(it has: {', '.join(sorted(interfaces))})")
        return name

    def ipv4_of(name: str) -> str:
        addresses = interfaces[interface(name)].get("ipv4") or []
        if not addresses:
            raise RoleError(f"interface {name} of node '{host}' has no IPv4 address (role '{role}' needs it "
                            "for the overlay's local_ip)")
        return addresses[0].split("/")[0]

    def overlay_address(name: str) -> str:
        """The tunnel endpoint with its prefix length (198.18.6.31/24): on the overlay interface, or, on the
        userspace datapath, on the overlay bridge the roles move it to (first render: still on the interface)."""
        names = [interface(name)]
        if values["datapath_type"] == "netdev":
            names.append(values["overlay_bridge"])
        for candidate in names:
            found = (interfaces.get(candidate) or {}).get("ipv4") or []
            if found:
                return found[0]
        raise RoleError(f"interface {' nor '.join(names)} of node '{host}' has no IPv4 address (role '{role}' "
                        "needs it for the overlay's local_ip)")

    def agent_services() -> list[str]:
        """What neutron.conf's agent part restarts: the agents this node's roles run."""
        if role != "network":
            return ["l2-agent"]
        l3 = ["l3-agent"] if values["network_option"] == "self-service" else []
        return ["l2-agent", *l3, "dhcp-agent", "metadata-agent"]

    def type_drivers() -> str:
        return "flat,vlan" + (f",{values['overlay']}" if values["network_option"] == "self-service" else "")

    def at_least(series: str) -> bool:
        """Whether the target release is ``series`` or newer (templates pick names and keys by release)."""
        return release(values["openstack_release"]) >= release(series)

    def unit(name: str) -> str:
        """A service's unit name on the node's distribution."""
        return RDO_UNITS.get(name, name) if values["distribution"] == "rdo" else name

    def packages(names: list[str]) -> dict[str, str]:
        """Packages by their Debian names, as the node's distribution names them, each wanted installed."""
        mapped = [n for name in names
                  for n in (RDO_PACKAGES.get(name, [name]) if values["distribution"] == "rdo" else [name])]
        return {name: "installed" for name in dict.fromkeys(mapped)}

    def server_units() -> list[str]:
        """The Neutron server's units for the release and distribution."""
        if release(values["openstack_release"]) >= API_SPLIT:
            # the periodic workers run what neutron-server ran beside its API: rescheduling away from dead agents
            # (DHCP, L3), the periodic cleanups
            return ["neutron-api", "neutron-rpc-server", "neutron-periodic-workers"]
        return ["neutron-server"]

    return {"secret": secret, "interface": interface, "ipv4_of": ipv4_of, "overlay_address": overlay_address,
            "type_drivers": type_drivers,
            "agent_services": agent_services, "at_least": at_least, "unit": unit, "server_units": server_units,
            "packages": packages}


HELPERS = ("secret", "interface", "ipv4_of", "overlay_address", "type_drivers", "agent_services", "at_least", "unit",
           "server_units", "packages")
