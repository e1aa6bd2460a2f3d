"""The ``ovs_bridge`` driver: Open vSwitch bridges and their ports (``ovs-vsctl add-br / add-port``).

Example (the three-node guide's external bridge)::

    - id: br-ex
      driver: ovs_bridge
      name: br-ex
      datapath_type: netdev          # 'system' (the default) needs the kernel module
      external_ids: {bridge-id: br-ex}
      ports:
        - eth2                       # an existing interface
        - {name: patch-int, type: patch, peer: patch-ex}
        - {name: gre-net2, type: gre, remote_ip: 198.18.1.31, key: flow}

Everything for one resource is one OVSDB transaction. Ports not listed are left
alone unless ``purge_ports: true``. ``state: absent`` deletes the bridge.
"""

from __future__ import annotations

import socket
from typing import Any

from nodeagent.kit import fields
from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.kit.result import Change
from nodeagent.kit.watches import Row, Watch
from nodeagent.kit.errors import InvalidResource, PermanentError, preview

PORT_TYPES = ("system", "internal", "patch", "gre", "vxlan", "geneve")
TUNNEL_TYPES = ("gre", "vxlan", "geneve")
OPTION_FIELDS = ("peer", "remote_ip", "local_ip", "key", "dst_port")


class OvsBridgeDriver(Driver):
    """A bridge of ovs-vswitchd, through ovsdbapp."""

    phase = 30
    network = True

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        fields.check_fields(spec, "ovs_bridge", ["name"],
                            ["datapath_type", "fail_mode", "external_ids", "ports", "purge_ports", "state"])
        external_ids = spec.get("external_ids", {})
        if not isinstance(external_ids, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in external_ids.items()):
            raise InvalidResource("external_ids",
                                  f"must be a mapping of strings to strings, got {preview(external_ids)}")
        ports = spec.get("ports", [])
        if not isinstance(ports, list):
            raise InvalidResource("ports", f"must be a list of interface names, got {preview(ports)}")
        normal_ports = [_port(item, index) for index, item in enumerate(ports)]
        names = [p["name"] for p in normal_ports]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidResource("ports", f"lists {', '.join(duplicates)} more than once")
        name = fields.interface_name(spec.get("name"), "name", "a bridge name")
        if name in names:
            raise InvalidResource("ports", f"names the bridge '{name}' itself (its own port is implicit)")
        return {
            "name": name,
            "state": fields.choice(spec, "state", ["present", "absent"], "present"),
            "datapath_type": fields.choice(spec, "datapath_type", ["system", "netdev"], "system"),
            "fail_mode": fields.choice(spec, "fail_mode", ["secure", "standalone"], "standalone")
            if "fail_mode" in spec else None,
            "external_ids": dict(external_ids),
            "ports": normal_ports,
            "purge_ports": fields.flag(spec, "purge_ports", False),
        }

    def observe(self, spec: dict[str, Any], ctx: Context) -> dict[str, Any]:
        from nodeagent.kit import ovsdb  # on use: ovsdbapp is heavy, and validating needs none of it

        api = ovsdb.api(ctx.ovsdb)
        rows = api.db_list("Bridge", [spec["name"]], columns=["datapath_type", "fail_mode", "external_ids"],
                           if_exists=True).execute(check_error=True)
        if not rows:
            return {"exists": False, "ports": {}}
        bridge = rows[0]
        port_names = api.list_ports(spec["name"]).execute(check_error=True)
        interfaces = api.db_list("Interface", [spec["name"], *port_names],
                                 columns=["name", "type", "options", "error", "ofport"],
                                 if_exists=True).execute(check_error=True)
        by_name = {row["name"]: row for row in interfaces}
        return {
            "exists": True,
            "datapath_type": bridge["datapath_type"] or "system",
            "fail_mode": _single(bridge["fail_mode"]),
            "external_ids": dict(bridge["external_ids"]),
            "own_error": _error(by_name.get(spec["name"])),
            "ports": {name: {"type": by_name.get(name, {}).get("type") or "system",
                             "options": dict(by_name.get(name, {}).get("options", {})),
                             "error": _error(by_name.get(name))} for name in port_names},
        }

    def diff(self, spec: dict[str, Any], observed: dict[str, Any]) -> list[Change]:
        if spec["state"] == "absent":
            return [Change("bridge", spec["name"], None)] if observed["exists"] else []
        changes = []
        if not observed["exists"]:
            changes.append(Change("bridge", None, spec["name"]))
        elif observed["own_error"]:
            changes.append(Change("bridge", f"error: {observed['own_error']}", spec["name"]))
        for name in ("datapath_type", "fail_mode"):
            if observed["exists"] and spec[name] is not None and observed[name] != spec[name]:
                changes.append(Change(name, observed[name], spec[name]))
        for key, value in spec["external_ids"].items():
            current = observed.get("external_ids", {}).get(key)
            if current != value:
                changes.append(Change(f"external_ids.{key}", current, value))
        for port in spec["ports"]:
            found = observed["ports"].get(port["name"])
            wanted = _describe(port)
            if found is None:
                changes.append(Change(f"ports.{port['name']}", None, wanted))
            elif found["type"] != port["type"] or any(found["options"].get(k) != v for k, v in port["options"].items()):
                changes.append(Change(f"ports.{port['name']}", _describe(found), wanted))
            elif found["error"] and port["type"] != "patch":
                changes.append(Change(f"ports.{port['name']}", f"error: {found['error']}", wanted))
        if spec["purge_ports"]:
            listed = {p["name"] for p in spec["ports"]}
            for name in sorted(set(observed["ports"]) - listed):
                changes.append(Change(f"ports.{name}", _describe(observed["ports"][name]), None))
        return changes

    def apply(self, spec: dict[str, Any], changes: list[Change], ctx: Context) -> None:
        from nodeagent.kit import ovsdb

        api = ovsdb.api(ctx.ovsdb)
        name = spec["name"]
        if spec["state"] == "absent":
            api.del_br(name, if_exists=True).execute(check_error=True)
            return
        system_ports = [p["name"] for p in spec["ports"] if p["type"] == "system"]
        ctx.in_netns(_require_interfaces, system_ports, ctx.where())
        owners = _port_owners(api)
        for port in spec["ports"]:
            owner = owners.get(port["name"], name)
            if owner != name:
                raise PermanentError(f"port {port['name']} already belongs to bridge {owner}")
        changed = {c.field for c in changes}
        with api.transaction(check_error=True) as txn:
            txn.add(api.add_br(name, may_exist=True, datapath_type=spec["datapath_type"]))
            if spec["fail_mode"]:
                txn.add(api.set_fail_mode(name, spec["fail_mode"]))
            if spec["external_ids"]:
                txn.add(api.db_set("Bridge", name, ("external_ids", spec["external_ids"])))
            for port in spec["ports"]:
                if f"ports.{port['name']}" not in changed:
                    continue
                attrs = {"type": "" if port["type"] == "system" else port["type"], "options": port["options"]}
                txn.add(api.add_port(name, port["name"], may_exist=True))
                txn.add(api.db_set("Interface", port["name"], *attrs.items()))
            if spec["purge_ports"]:
                listed = {p["name"] for p in spec["ports"]}
                for change in changes:
                    if change.field.startswith("ports.") and change.new is None and change.field[6:] not in listed:
                        txn.add(api.del_port(change.field[6:], bridge=name, if_exists=True))
        self._check_vswitchd(api, spec)

    def restoring(self, spec: dict[str, Any], observed: dict[str, Any]) -> list[dict[str, Any]]:
        """Gone when it was not there; else its datapath, fail mode, external_ids and exactly the ports it had.

        A port of a type this driver does not manage (dpdk, ...) cannot be listed: the other ports are then
        restored without purging, and an added port stays. Keys the change added to external_ids stay too
        (they carry no traffic).
        """
        if not observed["exists"]:
            return [{"name": spec["name"], "state": "absent"}]
        ports = [{"name": name, "type": port["type"],
                  **{key: value for key, value in port["options"].items() if key in OPTION_FIELDS}}
                 for name, port in observed["ports"].items() if port["type"] in PORT_TYPES]
        back = {"name": spec["name"], "datapath_type": observed["datapath_type"],
                "external_ids": observed["external_ids"], "ports": ports,
                "purge_ports": len(ports) == len(observed["ports"])}
        if observed["fail_mode"]:
            back["fail_mode"] = observed["fail_mode"]
        return [back]

    @staticmethod
    def _check_vswitchd(api: Any, spec: dict[str, Any]) -> None:
        """OVSDB accepts any row; only the Interface rows tell whether ovs-vswitchd made the bridge and ports."""
        names = [spec["name"], *(p["name"] for p in spec["ports"])]
        rows = api.db_list("Interface", names, columns=["name", "error", "ofport"],
                           if_exists=True).execute(check_error=True)
        by_name = {row["name"]: row for row in rows}
        own = by_name.get(spec["name"])
        if own is None or _error(own):
            hint = ("; datapath_type 'system' needs the openvswitch kernel module: use 'netdev' where it is missing"
                    if spec["datapath_type"] == "system" else "")
            raise PermanentError(f"ovs-vswitchd did not create bridge {spec['name']}: "
                                 f"{_error(own) or 'no such interface'}{hint}")
        # A patch port reports an error until its peer exists, which is often the next resource.
        failed = [f"{p['name']}: {_error(by_name[p['name']])}" for p in spec["ports"]
                  if p["type"] != "patch" and p["name"] in by_name and _error(by_name[p["name"]])]
        if failed:
            raise PermanentError(f"ovs-vswitchd could not add port(s) to {spec['name']}: {'; '.join(failed)}")

    def watches(self, spec: dict[str, Any], ctx: Context) -> list[Watch]:
        names = [spec["name"], *(p["name"] for p in spec["ports"])]
        return [Row(table, name, ctx.ovsdb) for name in names for table in ("Bridge", "Port", "Interface")]


def _port(item: Any, index: int) -> dict[str, Any]:
    where = f"ports[{index}]"
    if isinstance(item, str):
        return {"name": fields.interface_name(item, "ports", "a list of interface names"), "type": "system",
                "options": {}}
    if not isinstance(item, dict):
        raise InvalidResource("ports", f"must be a list of interface names, got {preview(item)}")
    unknown = set(item) - {"name", "type", *OPTION_FIELDS}
    if unknown:
        raise InvalidResource(where, f"has unknown field(s) {', '.join(sorted(unknown))} "
                              f"(known: name, type, {', '.join(OPTION_FIELDS)})")
    port_type = item.get("type", "system")
    if port_type not in PORT_TYPES:
        raise InvalidResource(f"{where}.type", f"must be one of {', '.join(PORT_TYPES)}, got {preview(port_type)}")
    options = {}
    for key in OPTION_FIELDS:
        if key in item:
            if isinstance(item[key], bool) or not isinstance(item[key], (str, int)):
                raise InvalidResource(f"{where}.{key}", f"must be a string, got {preview(item[key])}")
            options[key] = str(item[key])
    if port_type == "patch" and "peer" not in options:
        raise InvalidResource(f"{where}.peer", "is required for a patch port")
    if port_type in TUNNEL_TYPES and "remote_ip" not in options:
        raise InvalidResource(f"{where}.remote_ip", f"is required for a {port_type} port")
    if port_type in ("system", "internal") and options:
        raise InvalidResource(where, f"a {port_type} port takes no options, got {', '.join(options)}")
    for key in ("remote_ip", "local_ip"):
        if key in options and options[key] != "flow":
            fields.ipv4_address(options, key, f"{where}.{key}")
    return {"name": fields.interface_name(item.get("name"), f"{where}.name"), "type": port_type, "options": options}


def _describe(port: dict[str, Any]) -> str:
    options = ",".join(f"{k}={v}" for k, v in sorted(port["options"].items()))
    return port["type"] + (f"({options})" if options else "")


def _error(row: dict[str, Any] | None) -> str | None:
    if row is None:
        return None
    error, ofport = _single(row.get("error")), _single(row.get("ofport"))
    if error:
        return error
    if ofport is None or ofport == -1:
        return "no OpenFlow port"
    return None


def _port_owners(api: Any) -> dict[str, str]:
    """Port name -> bridge name, read from the IDL replica (ovsdbapp's read commands do the same)."""
    return {port.name: bridge.name for bridge in api.tables["Bridge"].rows.values() for port in bridge.ports}


def _single(value: Any) -> Any:
    """OVSDB optional columns come as a list of zero or one value."""
    if isinstance(value, list):
        return value[0] if value else None
    return value or None


def _require_interfaces(names: list[str], where: str) -> None:
    for name in names:
        try:
            socket.if_nametoindex(name)
        except OSError:
            raise PermanentError(f"interface {name} not found {where}") from None
