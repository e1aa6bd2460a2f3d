"""The ``linux_bridge`` driver: kernel bridges with their ports, and VXLAN interfaces.

Examples (the two-node guide's provider bridge and overlay)::

    - id: vxlan-overlay
      driver: linux_bridge
      kind: vxlan
      name: vxlan-100
      vni: 100
      local: 198.18.2.31
      device: veth-overlay      # the underlay interface
      learning: false
    - id: provider-bridge
      driver: linux_bridge
      name: brq-provider
      ports: [veth-provider, vxlan-100]
      mtu: 1500
      after: [vxlan-overlay]

``ports`` are attached; other ports are left alone unless ``purge_ports: true``.
``state`` is ``up`` (default), ``down`` or ``absent``.
"""

from __future__ import annotations

from typing import Any

from nodeagent.kit import fields
from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.kit.result import Change
from nodeagent.kit.watches import Link, Watch
from nodeagent.kit.errors import InvalidResource, PermanentError

VXLAN_FIELDS = ("vni", "local", "device", "port", "learning")


class LinuxBridgeDriver(Driver):
    """A bridge or a VXLAN interface, through rtnetlink (pyroute2)."""

    phase = 30
    network = True

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        kind = fields.choice(spec, "kind", ["bridge", "vxlan"], "bridge")
        common = ["kind", "state", "mtu"]
        if kind == "bridge":
            fields.check_fields(spec, "linux_bridge", ["name"], [*common, "ports", "purge_ports"])
        else:
            fields.check_fields(spec, "linux_bridge", ["name", "vni"], [*common, "local", "device", "port", "learning"])
        normal = {
            "kind": kind,
            "name": fields.interface_name(spec.get("name"), "name"),
            "state": fields.choice(spec, "state", ["up", "down", "absent"], "up"),
            "mtu": fields.integer(spec, "mtu", 68, 65535),
        }
        if kind == "bridge":
            normal["ports"] = fields.interface_list(spec, "ports")
            normal["purge_ports"] = fields.flag(spec, "purge_ports", False)
            if normal["name"] in normal["ports"]:
                raise InvalidResource("ports", f"names the bridge '{normal['name']}' itself")
        else:
            normal["vni"] = fields.integer(spec, "vni", 1, 16777215)
            normal["local"] = fields.ipv4_address(spec, "local")
            normal["device"] = fields.interface_name(spec["device"], "device") if "device" in spec else None
            normal["port"] = fields.integer(spec, "port", 1, 65535, 4789)
            normal["learning"] = fields.flag(spec, "learning", True)
        return normal

    def observe(self, spec: dict[str, Any], ctx: Context) -> dict[str, Any]:
        from nodeagent.kit import netlink  # on use: pyroute2 is heavy, and validating needs none of it

        links = netlink.links(ctx)  # each link read once per pass, shared with the other link resources
        if spec["kind"] == "bridge":
            links.dump()  # its ports are known only from every link's master: read them all, and itself with them
        link = links.get(spec["name"])
        if link is None:
            return {"exists": False}
        info = link.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info else None
        found = {"exists": True, "kind": kind, "mtu": link.get_attr("IFLA_MTU"),
                 "state": "up" if link["flags"] & netlink.IFF_UP else "down"}
        if kind == "bridge":
            found["ports"] = links.ports_of(link["index"])
        elif kind == "vxlan":
            data = info.get_attr("IFLA_INFO_DATA")
            found.update(vni=data.get_attr("IFLA_VXLAN_ID"), local=data.get_attr("IFLA_VXLAN_LOCAL"),
                         device=links.name_of(data.get_attr("IFLA_VXLAN_LINK")),
                         port=data.get_attr("IFLA_VXLAN_PORT"),
                         learning=bool(data.get_attr("IFLA_VXLAN_LEARNING")))
        return found

    def diff(self, spec: dict[str, Any], observed: dict[str, Any]) -> list[Change]:
        if spec["state"] == "absent":
            return [Change("state", observed.get("kind"), "absent")] if observed["exists"] else []
        if not observed["exists"]:
            changes = [Change("link", None, f"{spec['kind']} {spec['name']}")]
        elif observed["kind"] != spec["kind"]:
            return [Change("kind", observed["kind"], spec["kind"])]
        else:
            changes = []
        if spec["kind"] == "vxlan":
            for name in VXLAN_FIELDS:
                if spec[name] is not None and observed.get(name) != spec[name]:
                    changes.append(Change(name, _text(observed.get(name)), _text(spec[name])))
        if spec["mtu"] is not None and observed.get("mtu") != spec["mtu"]:
            changes.append(Change("mtu", _text(observed.get("mtu")), str(spec["mtu"])))
        if observed.get("state") != spec["state"]:
            changes.append(Change("state", observed.get("state"), spec["state"]))
        if spec["kind"] == "bridge":
            current = set(observed.get("ports", []))
            for port in spec["ports"]:
                if port not in current:
                    changes.append(Change(f"ports.{port}", None, "attached"))
            if spec["purge_ports"]:
                for port in sorted(current - set(spec["ports"])):
                    changes.append(Change(f"ports.{port}", "attached", None))
        return changes

    def apply(self, spec: dict[str, Any], changes: list[Change], ctx: Context) -> None:
        from nodeagent.kit import netlink

        name = spec["name"]
        with netlink.iproute(ctx) as ipr:
            link = netlink.find_link(ipr, name)
            if spec["state"] == "absent":
                if link is not None:
                    ipr.link("del", index=link["index"])
                return
            if any(c.field == "kind" for c in changes):
                found = next(c.old for c in changes if c.field == "kind")
                raise PermanentError(f"interface {name} exists {ctx.where()} as a {found or 'plain'} link, "
                                     f"not a {spec['kind']}; remove it or choose another name")
            # Check everything this resource needs before changing anything.
            ports = {port: netlink.require_index(ipr, port, ctx) for port in spec.get("ports", [])}
            device = netlink.require_index(ipr, spec["device"], ctx) if spec.get("device") else None
            if link is not None and spec["kind"] == "vxlan" and any(c.field in VXLAN_FIELDS for c in changes):
                ipr.link("del", index=link["index"])  # a VXLAN's identity cannot be changed in place
                link = None
            if link is None:
                self._create(ipr, spec, device)
            index = netlink.require_index(ipr, name, ctx)
            if spec["mtu"] is not None:
                ipr.link("set", index=index, mtu=spec["mtu"])
            for port_index in ports.values():
                ipr.link("set", index=port_index, master=index)
            if spec.get("purge_ports"):
                for change in changes:
                    if change.field.startswith("ports.") and change.new is None:
                        ipr.link("set", index=netlink.require_index(ipr, change.field[6:], ctx), master=0)
            ipr.link("set", index=index, state=spec["state"])

    def restoring(self, spec: dict[str, Any], observed: dict[str, Any]) -> list[dict[str, Any]]:
        """Gone when it was not there; else its fields, state and MTU as seen, with exactly the ports it had."""
        identity = {"name": spec["name"], "kind": spec["kind"], **({"vni": spec["vni"]} if "vni" in spec else {})}
        if not observed["exists"]:
            return [{**identity, "state": "absent"}]
        if observed["kind"] != spec["kind"]:
            return []  # the apply refuses to touch another kind of link: nothing to undo
        back = {**identity, "state": observed["state"], "mtu": observed["mtu"]}
        if spec["kind"] == "bridge":
            back.update(ports=observed["ports"], purge_ports=True)
        else:
            back.update({name: observed[name] for name in VXLAN_FIELDS if observed.get(name) is not None})
        return [back]

    @staticmethod
    def _create(ipr: Any, spec: dict[str, Any], device: int | None) -> None:
        if spec["kind"] == "bridge":
            ipr.link("add", ifname=spec["name"], kind="bridge")
            return
        options = {"vxlan_id": spec["vni"], "vxlan_port": spec["port"], "vxlan_learning": int(spec["learning"])}
        if spec["local"]:
            options["vxlan_local"] = spec["local"]
        if device:
            options["vxlan_link"] = device
        ipr.link("add", ifname=spec["name"], kind="vxlan", **options)

    def watches(self, spec: dict[str, Any], ctx: Context) -> list[Watch]:
        names = [spec["name"], *spec.get("ports", []), *([spec["device"]] if spec.get("device") else [])]
        return [Link(name, ctx.netns) for name in names]


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "on" if value else "off"
    return None if value is None else str(value)
