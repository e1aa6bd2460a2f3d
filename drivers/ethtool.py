"""The ``ethtool`` driver: offload features of an interface (``ethtool -K IFACE gro off``).

Example::

    - id: gro-off-external
      driver: ethtool
      interface: eth2
      features: {gro: false}

Feature names are ethtool's short ones (gro, gso, tso, lro, sg, rx, tx, rxvlan,
txvlan, ntuple, rxhash) or the kernel's own (rx-gro, tx-tcp-segmentation, ...).
"""

from __future__ import annotations

import errno
import re
from typing import Any, Iterable

from nodeagent.kit import fields
from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.kit.result import Change
from nodeagent.kit.watches import Link, Watch
from nodeagent.kit.errors import InvalidResource, PermanentError, preview

# The short names ethtool -K accepts, as patterns of the kernel features each one switches.
ALIASES = {
    "gro": r"rx-gro",
    "lro": r"rx-lro",
    "gso": r"tx-generic-segmentation",
    "tso": r"tx-tcp.*-segmentation",
    "sg": r"tx-scatter-gather",
    "rx": r"rx-checksum",
    "tx": r"tx-checksum-.*",
    "rxvlan": r"rx-vlan-hw-parse",
    "txvlan": r"tx-vlan-hw-insert",
    "ntuple": r"rx-ntuple-filter",
    "rxhash": r"rx-hashing",
}


class EthtoolDriver(Driver):
    """Offload features, read and set through the ethtool ioctl in the context's namespace."""

    phase = 40
    network = True

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        fields.check_fields(spec, "ethtool", ["interface", "features"], [])
        features = spec["features"]
        if not isinstance(features, dict) or not features:
            raise InvalidResource("features", f"must be a mapping of feature to true/false, got {preview(features)}")
        for name, wanted in features.items():
            if not isinstance(name, str) or not (name in ALIASES or re.fullmatch(r"[a-z][a-z0-9_-]+", name)):
                raise InvalidResource("features", f"has an invalid feature name {preview(name)}")
            if not isinstance(wanted, bool):
                raise InvalidResource(f"features.{name}", f"must be true or false, got {preview(wanted)}")
        return {"interface": fields.interface_name(spec.get("interface"), "interface"), "features": dict(features)}

    def observe(self, spec: dict[str, Any], ctx: Context) -> dict[str, dict[str, bool]]:
        """For each feature: whether it is on, and whether the interface lets it be changed."""
        return _read_features(spec["interface"], list(spec["features"]), ctx)

    def diff(self, spec: dict[str, Any], observed: dict[str, dict[str, bool]]) -> list[Change]:
        return [Change(name, _onoff(observed[name]["on"]), _onoff(wanted))
                for name, wanted in spec["features"].items() if observed[name]["on"] != wanted]

    def apply(self, spec: dict[str, Any], changes: list[Change], ctx: Context) -> None:
        wanted = {c.field: spec["features"][c.field] for c in changes}
        _write_features(spec["interface"], wanted, ctx)

    def restoring(self, spec: dict[str, Any], observed: dict[str, dict[str, bool]]) -> list[dict[str, Any]]:
        """Each feature as it was (those the interface lets change)."""
        features = {name: state["on"] for name, state in observed.items() if state["changeable"]}
        return [{"interface": spec["interface"], "features": features}] if features else []

    def watches(self, spec: dict[str, Any], ctx: Context) -> list[Watch]:
        # A feature change makes the kernel send RTM_NEWLINK (NETDEV_FEAT_CHANGE): no polling needed.
        return [Link(spec["interface"], ctx.netns)]


def _switched(name: str, kernel_names: Iterable[str]) -> list[str]:
    """The kernel features a feature name switches: those its alias's pattern matches, or itself."""
    pattern = ALIASES.get(name, re.escape(name))
    return [kernel_name for kernel_name in kernel_names if re.fullmatch(pattern, kernel_name)]


def _features(tool: Any, interface: str, ctx: Context) -> Any:
    """The interface's feature list (pyroute2's, which also sets them), or a clear error when it is missing."""
    from nodeagent.kit import ethtool

    tool.change_ifname(interface)
    try:
        return tool.get_features()
    except (OSError, ethtool.NoSuchDevice) as exc:  # pyroute2 raises either for ENODEV
        if isinstance(exc, OSError) and exc.errno != errno.ENODEV:
            raise
        raise PermanentError(f"interface {interface} not found {ctx.where()}") from None


def _read_features(interface: str, names: list[str], ctx: Context) -> dict[str, dict[str, bool]]:
    from nodeagent.kit import ethtool  # on use: validating a document needs no pyroute2

    with ethtool.ethtool(ctx) as tool:
        found = {name: (on, available) for name, on, available, *_ in _features(tool, interface, ctx)}
    result = {}
    for name in names:
        members = [found[kernel_name] for kernel_name in _switched(name, found)]
        if not members:
            raise PermanentError(f"interface {interface} has no offload feature '{name}'")
        changeable = [m for m in members if m[1]]
        result[name] = {"on": all(on for on, _ in (changeable or members)), "changeable": bool(changeable)}
    return result


def _write_features(interface: str, wanted: dict[str, bool], ctx: Context) -> None:
    from nodeagent.kit import ethtool

    with ethtool.ethtool(ctx) as tool:
        features = _features(tool, interface, ctx)
        available = {name: changeable for name, _, changeable, *_ in features}
        for name, value in wanted.items():
            changeable = [kernel_name for kernel_name in _switched(name, available) if available[kernel_name]]
            if not changeable:
                raise PermanentError(f"offload feature '{name}' of interface {interface} is fixed by its driver "
                                     f"and cannot be turned {_onoff(value)}")
            for kernel_name in changeable:
                features[kernel_name] = value
        tool.set_features(features)
    after = _read_features(interface, list(wanted), ctx)
    refused = [name for name, value in wanted.items() if after[name]["on"] != value]
    if refused:
        raise PermanentError(f"interface {interface} refused to change offload feature(s) {', '.join(refused)} "
                             "(another feature it depends on may be off)")


def _onoff(value: bool) -> str:
    return "on" if value else "off"
