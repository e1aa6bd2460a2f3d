"""The ``address`` driver: one IPv4 address on one interface (``ip addr add / del``), through rtnetlink.

Nothing else manages an interface's address, and on the userspace datapath the tunnel endpoint must move
from the overlay NIC to an OVS bridge: present on the bridge first, then absent from the NIC, so the node
is never without it. Example (the roles, ``datapath_type: netdev``)::

    - id: overlay-address
      driver: address
      interface: br-phy
      address: 198.18.6.31/24
      link: up                      # a netdev bridge's tap device starts down
      after: [overlay-bridge]
    - id: overlay-address-off-eth1
      driver: address
      interface: eth1
      address: 198.18.6.31/24
      state: absent
      after: [overlay-address]

``state`` is ``present`` (default) or ``absent``; an absent interface holds no address, so ``absent`` is then
in sync. Other IPv4 addresses of the interface are left alone, unless ``purge: true`` (an interface the
resource owns, such as the overlay bridge: a tunnel endpoint that changed leaves no old one behind).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from nodeagent.kit import fields
from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.kit.errors import InvalidResource, PermanentError, preview
from nodeagent.kit.result import Change
from nodeagent.kit.watches import Link, Watch


class AddressDriver(Driver):
    """An IPv4 address of an interface, in the context's namespace."""

    phase = 35  # after the bridges and links (phase 30) that carry it
    network = True

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        fields.check_fields(spec, "address", ["interface", "address"], ["state", "link", "purge"])
        value = spec["address"]
        try:
            interface = ipaddress.IPv4Interface(value) if isinstance(value, str) and "/" in value else None
        except ValueError:
            interface = None
        if interface is None or (interface.ip == interface.network.network_address and interface.network.prefixlen < 31):
            raise InvalidResource("address", f"must be an IPv4 address with its prefix length (198.18.6.31/24), "
                                  f"got {preview(value)}")
        link = spec.get("link")
        if link not in (None, "up"):
            raise InvalidResource("link", f"must be 'up' (or left out: the link's state is not managed), "
                                  f"got {preview(link)}")
        state = fields.choice(spec, "state", ["present", "absent"], "present")
        purge = fields.flag(spec, "purge", False)
        for name, value in (("link", link), ("purge", purge)):
            if state == "absent" and value:
                raise InvalidResource(name, "is only for a present address")
        return {"interface": fields.interface_name(spec.get("interface"), "interface"), "address": str(interface),
                "state": state, "link": link, "purge": purge}

    def observe(self, spec: dict[str, Any], ctx: Context) -> dict[str, Any]:
        from nodeagent.kit import netlink  # on use: pyroute2 is heavy, and validating needs none of it

        link = netlink.links(ctx).get(spec["interface"])  # read once per pass, shared with other link resources
        if link is None:
            return {"exists": False, "addresses": []}
        with netlink.iproute(ctx) as ipr:
            addresses = sorted(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                               for a in ipr.get_addr(family=socket.AF_INET, index=link["index"]))
            return {"exists": True, "addresses": addresses,
                    "link": "up" if link["flags"] & netlink.IFF_UP else "down"}

    def diff(self, spec: dict[str, Any], observed: dict[str, Any]) -> list[Change]:
        wanted = spec["address"]
        ip = wanted.split("/")[0]
        same_ip = [a for a in observed["addresses"] if a.split("/")[0] == ip]
        if spec["state"] == "absent":
            return [Change("address", a, None) for a in same_ip]
        if not observed["exists"]:
            return [Change("interface", None, spec["interface"])]
        changes = []
        if wanted not in same_ip:
            changes.append(Change("address", ", ".join(same_ip) or None, wanted))
        if spec["purge"]:
            changes += [Change("address", other, None) for other in observed["addresses"]
                        if other.split("/")[0] != ip]
        if spec["link"] and observed["link"] != spec["link"]:
            changes.append(Change("link", observed["link"], spec["link"]))
        return changes

    def apply(self, spec: dict[str, Any], changes: list[Change], ctx: Context) -> None:
        from nodeagent.kit import netlink

        ip, prefix = spec["address"].split("/")
        with netlink.iproute(ctx) as ipr:
            link = netlink.find_link(ipr, spec["interface"])
            if link is None:
                if spec["state"] == "absent":
                    return
                raise PermanentError(f"interface {spec['interface']} not found {ctx.where()}: "
                                     f"cannot give it {spec['address']}")
            index = link["index"]
            present = [(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                       for a in ipr.get_addr(family=socket.AF_INET, index=index)]
            wanted = (ip, int(prefix))
            if spec["state"] == "present" and wanted not in present:  # added before anything is removed
                ipr.addr("add", index=index, address=ip, prefixlen=int(prefix))
            for address, length in present:  # the same address with another prefix length is replaced
                if (address == ip and (spec["state"] == "absent" or length != int(prefix))) or (
                        spec["purge"] and address != ip):
                    ipr.addr("del", index=index, address=address, prefixlen=length)
            if spec["state"] == "present":
                # removing a subnet's primary address takes its secondaries along (promote_secondaries off)
                if wanted not in [(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                                  for a in ipr.get_addr(family=socket.AF_INET, index=index)]:
                    ipr.addr("add", index=index, address=ip, prefixlen=int(prefix))
                if spec["link"] == "up":
                    ipr.link("set", index=index, state="up")

    def restoring(self, spec: dict[str, Any], observed: dict[str, Any]) -> list[dict[str, Any]]:
        """Every address the interface had, and this one gone if it was not there (the link stays as it is)."""
        back = [{"interface": spec["interface"], "address": address} for address in observed["addresses"]]
        if spec["address"].split("/")[0] not in [address.split("/")[0] for address in observed["addresses"]]:
            back.append({"interface": spec["interface"], "address": spec["address"], "state": "absent"})
        return back

    def watches(self, spec: dict[str, Any], ctx: Context) -> list[Watch]:
        return [Link(spec["interface"], ctx.netns)]
