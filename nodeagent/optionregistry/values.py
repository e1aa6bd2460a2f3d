"""Is a value what the option's type accepts? Parsed by oslo.config's own types, as the service parses it."""

from __future__ import annotations

from oslo_config import types

from nodeagent.optionregistry.registry import Option

_TYPES = {
    "bool": lambda o: types.Boolean(),
    "int": lambda o: types.Integer(min=o.min, max=o.max, choices=o.choices or None),
    "port": lambda o: types.Port(min=o.min, max=o.max, choices=o.choices or None),
    "float": lambda o: types.Float(min=o.min, max=o.max),
    "str": lambda o: types.String(choices=o.choices or None),
    "multi": lambda o: types.MultiString(),
    "list": lambda o: types.List(item_type=_TYPES.get(o.item_type or "str", _TYPES["str"])(_plain(o))),
    "dict": lambda o: types.Dict(),
    "ip": lambda o: types.IPAddress(version=int(o.ip_version) if o.ip_version else None),
    "host": lambda o: types.HostAddress(),
    "hostdomain": lambda o: types.HostDomain(),
    "hostname": lambda o: types.Hostname(),
    "uri": lambda o: types.URI(schemes=list(o.schemes) or None),
    "range": lambda o: types.Range(),
}
_WHAT = {"bool": "a boolean (true or false)", "int": "an integer", "port": "a port number", "float": "a number",
         "ip": "an IP address", "host": "a host name or IP address", "hostdomain": "a host name or domain",
         "hostname": "a host name", "uri": "a URI", "dict": "a dict (key:value,...)", "range": "a range (a:b)",
         "list": "a comma-separated list"}


def _plain(option: Option) -> Option:
    """A list's items: the item type with no bounds or choices of the list itself."""
    return Option(option.section, option.name, option.namespace, option.item_type or "str")


def problem(option: Option, value: str) -> str | None:
    """Why ``value`` is not a valid value of ``option`` (without echoing it), or None when it is."""
    if value == "" and option.type in ("str", "list", "multi", "dict"):
        return None  # oslo.config reads an empty value as an empty string or list
    try:
        _TYPES.get(option.type, _TYPES["str"])(option)(value)
    except (ValueError, TypeError):
        pass
    else:
        return None
    if option.choices:
        return "not one of the choices: " + ", ".join(map(str, option.choices))
    what = _WHAT.get(option.type, "a valid value")
    if option.type == "list" and option.item_type:
        what = f"a comma-separated list of {_WHAT.get(option.item_type, option.item_type)} items"
    bounds = [f">= {option.min:g}"] if option.min is not None else []
    bounds += [f"<= {option.max:g}"] if option.max is not None else []
    if bounds and option.type in ("int", "port", "float") and _is_number(value):
        return f"out of range: must be {' and '.join(bounds)}"
    if option.type == "uri" and option.schemes:
        what += f" with scheme {', '.join(option.schemes)}"
    return f"not {what}"


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
