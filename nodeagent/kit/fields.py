"""Checks every driver needs for its fields, so each driver's ``validate`` stays short.

Each helper raises InvalidResource naming the field and what was wrong; the model
adds the resource id.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import PurePosixPath
from typing import Any, Iterable

from nodeagent.kit.errors import InvalidResource, preview

def check_fields(spec: dict[str, Any], driver: str, required: Iterable[str], optional: Iterable[str]) -> None:
    """Refuse unknown fields (typos) and missing required ones."""
    required, optional = list(required), list(optional)
    known = required + optional
    for name in spec:
        if name not in known:
            raise InvalidResource(name, f"is not known to driver '{driver}' (known fields: {', '.join(known)})")
    for name in required:
        if name not in spec:
            raise InvalidResource(name, f"is required by driver '{driver}'")


def text(spec: dict[str, Any], name: str, pattern: str | None = None,
         what: str = "a non-empty string") -> str:
    value = spec.get(name)
    if not isinstance(value, str) or not value or (pattern and not re.fullmatch(pattern, value)):
        raise InvalidResource(name, f"must be {what}, got {preview(value)}")
    return value


def choice(spec: dict[str, Any], name: str, choices: Iterable[str], default: str) -> str:
    choices = list(choices)
    value = spec.get(name, default)
    if value not in choices:
        raise InvalidResource(name, f"must be one of {', '.join(choices)}, got {preview(value)}")
    return value


def absolute_path(spec: dict[str, Any], name: str) -> str:
    value = spec.get(name)
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidResource(name, f"must be an absolute path, got {preview(value)}")
    single_line(value, name)
    if ".." in PurePosixPath(value).parts:
        raise InvalidResource(name, f"must not contain '..', got {preview(value)}")
    path_length(value, name)
    return str(PurePosixPath(value))


PATH_MAX, NAME_MAX = 4095, 255  # Linux's limits, in bytes


def path_length(value: str, name: str) -> None:
    """Refuse what the kernel would refuse with ENAMETOOLONG, before anything is touched."""
    if len(value.encode()) > PATH_MAX:
        raise InvalidResource(name, f"is longer than {PATH_MAX} bytes, got {preview(value)}")
    for part in PurePosixPath(value).parts:
        if len(part.encode()) > NAME_MAX:
            raise InvalidResource(name, f"has a name longer than {NAME_MAX} bytes: {preview(part)}")


# Line breaks in any form Python or a config parser knows (\r, \x0b, \x0c, \x1c-\x1e, \x85,
# \u2028, \u2029: str.splitlines() splits on all of them), every other control character, and lone
# surrogates (valid in JSON, impossible to write as UTF-8).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def single_line(value: str, name: str) -> str:
    """Refuse control characters: a '\\r' in an ini value would start a line (a section) of its own."""
    found = _CONTROL.search(value)
    if found:
        # No preview of the value: it may be a secret, and this runs before the secrets are known.
        raise InvalidResource(name, f"must not contain control characters ({found.group()!r} at offset "
                              f"{found.start()} of {len(value)})")
    return value


def file_mode(spec: dict[str, Any], name: str = "permissions") -> int | None:
    """Permissions are an octal string ('0640'): a YAML integer 640 would silently mean 0o1200."""
    if name not in spec or spec[name] is None:
        return None
    value = spec[name]
    if not isinstance(value, str) or not re.fullmatch(r"0?[0-7]{3,4}", value):
        raise InvalidResource(name, f"must be an octal string such as '0640', got {preview(value)}")
    return int(value, 8)


MAX_ID = 2**32 - 2  # uid_t is 32 bits and (uid_t) -1 means "unchanged" to chown


def account(spec: dict[str, Any], name: str) -> str | int | None:
    """A user or group: a name, or a numeric id."""
    if name not in spec or spec[name] is None:
        return None
    value = spec[name]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidResource(name, f"must be a name or a numeric id, got {preview(value)}")
    if isinstance(value, int) or (value.isascii() and value.isdigit()):
        if len(str(value)) > 10 or not 0 <= int(value) <= MAX_ID:  # (int() of 5000 digits raises)
            raise InvalidResource(name, f"must be a numeric id from 0 to {MAX_ID}, got {preview(value)}")
        return int(value)
    if not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}\$?", value):
        raise InvalidResource(name, f"must be a name or a numeric id, got {preview(value)}")
    return value


def scalar_text(value: Any) -> str:
    """How a YAML scalar is written into a configuration file: booleans as oslo.config writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


FILE_FIELDS = ("permissions", "owner", "group")


def file_metadata(spec: dict[str, Any]) -> dict[str, Any]:
    """The permissions, owner and group fields every file-writing driver accepts."""
    return {"permissions": file_mode(spec, "permissions"), "owner": account(spec, "owner"), "group": account(spec, "group")}


_IFNAME = re.compile(r"[A-Za-z0-9_.:@+=-]{1,15}")


def interface_name(value: Any, name: str, what: str = "an interface name") -> str:
    """Linux interface names: 1 to 15 characters, no '/', no white space, not '.' or '..'."""
    if not isinstance(value, str) or not _IFNAME.fullmatch(value) or value in (".", ".."):
        detail = " (at most 15 characters)" if isinstance(value, str) and len(value) > 15 else ""
        raise InvalidResource(name, f"must be {what}{detail}, got {preview(value)}")
    return value


def interface_list(spec: dict[str, Any], name: str) -> list[str]:
    value = spec.get(name, [])
    if not isinstance(value, list):
        raise InvalidResource(name, f"must be a list of interface names, got {preview(value)}")
    return [interface_name(item, name, "a list of interface names") for item in value]


def flag(spec: dict[str, Any], name: str, default: bool) -> bool:
    value = spec.get(name, default)
    if not isinstance(value, bool):
        raise InvalidResource(name, f"must be true or false, got {preview(value)}")
    return value


def integer(spec: dict[str, Any], name: str, low: int, high: int, default: int | None = None) -> int | None:
    value = spec.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidResource(name, f"must be an integer from {low} to {high}, got {preview(value)}")
    return value


def ipv4_address(spec: dict[str, Any], name: str, where: str | None = None) -> str | None:
    """``spec[name]`` (None when absent) as a dotted IPv4 address; ``where`` names the field in errors."""
    value = spec.get(name)
    if value is None:
        return None
    return ipv4(value, where or name)


def ipv4(value: Any, name: str) -> str:
    """A dotted IPv4 address, written as text: ``ipaddress`` would take ``true`` as 0.0.0.1 and an integer
    as the address it counts to."""
    try:
        if not isinstance(value, str):
            raise ValueError
        return str(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError):
        raise InvalidResource(name, f"must be an IPv4 address, got {preview(value)}") from None


def utf8_text(value: str, name: str) -> str:
    """Text that can be written out: JSON lets a lone surrogate through, UTF-8 cannot hold it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidResource(name, f"is not valid Unicode text (a lone surrogate at offset {exc.start})") from None
    return value


def no_nul(value: str, name: str) -> str:
    """Refuse a NUL character: no file name, argument or environment value can hold one."""
    if "\0" in value:
        raise InvalidResource(name, f"must not contain a NUL character (at offset {value.index(chr(0))})")
    return utf8_text(value, name)
