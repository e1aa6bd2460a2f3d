"""Options of plugins installed on this host, which the registry's data does not cover (a vendor's ML2
mechanism driver, a service plugin): learned from their ``oslo.config.opts`` entry points, the way
``oslo-config-generator`` lists them; and the names they register in the groups a value names (a mechanism
driver's name in ``neutron.ml2.mechanism_drivers``).

Looked at only when a key is unknown to the release, and then once per process: each entry point is a function
that imports its plugin to list the options. The namespaces the registry already holds are not asked again.
"""

from __future__ import annotations

import functools
import logging
from importlib import metadata

from nodeagent.optionregistry import registry
from nodeagent.optionregistry.registry import Option

LOG = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "oslo.config.opts"


def find(section: str, key: str) -> tuple[Option, bool] | None:
    """The installed plugin option that reads ``[section] key``, and whether that is a deprecated alias of it."""
    return _learned().get((section, key))


@functools.lru_cache(maxsize=None)
def _learned() -> dict[tuple[str, str], tuple[Option, bool]]:
    known = _registry_namespaces()
    found: dict[tuple[str, str], tuple[Option, bool]] = {}
    for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry_point.name in known:
            continue
        try:
            groups = entry_point.load()()
        except Exception as exc:  # a broken plugin must not break the checks of everything else
            LOG.warning("option namespace %s could not be listed: %s", entry_point.name, exc)
            continue
        for group, opts in groups:
            section = getattr(group, "name", None) or group or "DEFAULT"
            for opt in opts:
                option = _option(entry_point.name, str(section), opt)
                found.setdefault((option.section, option.name), (option, False))
                for alias in option.deprecated:
                    found.setdefault(alias, (option, True))
    return found


@functools.lru_cache(maxsize=None)
def plugin_names(group: str) -> frozenset[str]:
    """The names installed here in an entry-point group (read from the metadata: nothing is imported)."""
    return frozenset(entry_point.name for entry_point in metadata.entry_points(group=group))


def _registry_namespaces() -> set[str]:
    return {namespace for service, series in registry.available().items() for one in series
            for namespaces in registry.load(service, one).files.values() for namespace in namespaces}


def _option(namespace: str, section: str, opt: object) -> Option:
    """An oslo.config ``Opt`` as the registry's ``Option`` (what the value checks read)."""
    from oslo_config import types

    kinds = [(types.Port, "port"), (types.Integer, "int"), (types.Float, "float"), (types.Boolean, "bool"),
             (types.MultiString, "multi"), (types.String, "str"), (types.List, "list"), (types.Dict, "dict"),
             (types.IPAddress, "ip"), (types.HostDomain, "hostdomain"), (types.HostAddress, "host"),
             (types.Hostname, "hostname"), (types.URI, "uri"), (types.Range, "range")]
    kind = next((name for cls, name in kinds if isinstance(opt.type, cls)), "str")
    item = getattr(opt.type, "item_type", None)
    aliases = tuple(sorted({(d.group or section, (d.name or opt.dest).replace("-", "_"))
                            for d in opt.deprecated_opts} - {(section, opt.dest)}))
    return Option(section, opt.dest, namespace, kind, choices=tuple(getattr(opt.type, "choices", None) or ()),
                  min=getattr(opt.type, "min", None), max=getattr(opt.type, "max", None),
                  item_type=next((name for cls, name in kinds if isinstance(item, cls)), None) if item else None,
                  deprecated=aliases, for_removal=bool(opt.deprecated_for_removal),
                  reason=str(opt.deprecated_reason or ""), since=str(opt.deprecated_since or ""),
                  secret=bool(opt.secret), multi=bool(opt.multi))
