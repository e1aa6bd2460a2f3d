"""The ``sysctl`` driver: kernel parameters, live in the node's namespace and persisted.

Example (the guide's /etc/sysctl.conf lines and ``sysctl -p``)::

    - id: forwarding
      driver: sysctl
      settings: {net.ipv4.ip_forward: 1, net.ipv4.conf.all.rp_filter: 0}
      persist: /etc/sysctl.d/90-neutron.conf

Live values are read and written under /proc/sys from a thread moved into the
context's network namespace, so a test namespace's values change and the host's do not.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Any

from nodeagent.kit import files, fields
from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.kit.result import Change
from nodeagent.kit.errors import InvalidResource, PermanentError, preview
from nodeagent.kit.watches import Netconf, Poll, Sysctl, Watch

_KEY = re.compile(r"[a-z0-9_][a-zA-Z0-9_\-]*(\.[a-zA-Z0-9_\-]+)+")
PERSISTED = " (persisted)"
# The kernel announces these through rtnetlink netconf messages; other parameters are polled.
_NETCONF = re.compile(r"net\.ipv4\.(ip_forward|conf\.[^.]+\.(forwarding|rp_filter|mc_forwarding))")
POLL_INTERVAL = 10.0


class SysctlDriver(Driver):
    """Kernel parameters by their dotted names."""

    phase = 20
    network = True  # its net.* parameters (restoring() leaves the others alone)

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        fields.check_fields(spec, "sysctl", ["settings"], ["persist"])
        settings = spec["settings"]
        if not isinstance(settings, dict) or not settings:
            raise InvalidResource("settings", f"must be a mapping of parameter to value, got {preview(settings)}")
        normalised = {}
        for key, value in settings.items():
            if not isinstance(key, str) or not _KEY.fullmatch(key):
                raise InvalidResource("settings",
                                      f"has an invalid parameter name {preview(key)} (e.g. net.ipv4.ip_forward)")
            if not fields.is_scalar(value) or isinstance(value, bool):
                raise InvalidResource(f"settings.{key}",
                                      f"must be a number or a single-line string, got {preview(value)}")
            normalised[key] = _normal(fields.single_line(str(value), f"settings.{key}"))
        persist = fields.absolute_path(spec, "persist") if "persist" in spec else None
        return {"settings": normalised, "persist": persist}

    def paths(self, spec: dict[str, Any]) -> list[tuple[str, bool]]:
        return [(spec["persist"], True)] if spec["persist"] else []

    def secret_values(self, spec: dict[str, Any], field: str) -> list[str]:
        if field not in spec["settings"]:
            raise InvalidResource("sensitive", f"names '{field}', which is not a parameter of this resource")
        return [spec["settings"][field]]

    def watches(self, spec: dict[str, Any], ctx: Context) -> list[Watch]:
        """The persisted file by inotify, forwarding and rp_filter by netconf events, the rest by polling; every
        key's /proc/sys file too, which names the writer where the node has fanotify."""
        announced = [_NETCONF.fullmatch(key) is not None for key in spec["settings"]]
        return [*super().watches(spec, ctx), *([Netconf(ctx.netns)] if any(announced) else []),
                *([] if all(announced) else [Poll(POLL_INTERVAL)]),
                *(Sysctl(key, ctx.netns) for key in spec["settings"])]

    def observe(self, spec: dict[str, Any], ctx: Context) -> dict[str, Any]:
        live = ctx.in_netns(_read_live, list(spec["settings"]), ctx.where())
        persisted = None
        if spec["persist"]:
            persisted = _parse_persisted(files.read_file(ctx.host_path(spec["persist"])).text)
        return {"live": live, "persisted": persisted}

    def diff(self, spec: dict[str, Any], observed: dict[str, Any]) -> list[Change]:
        changes = []
        for key, wanted in spec["settings"].items():
            if observed["live"][key] != wanted:
                changes.append(Change(key, observed["live"][key], wanted))
        if observed["persisted"] is not None:
            for key, wanted in spec["settings"].items():
                if observed["persisted"].get(key) != wanted:
                    changes.append(Change(key + PERSISTED, observed["persisted"].get(key), wanted))
        return changes

    def restoring(self, spec: dict[str, Any], observed: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The live values of its ``net.*`` parameters as they were (None when it has none: not checkpointed).
        The persisted file is no live state; it follows the document the agent holds after the rollback."""
        live = {key: value for key, value in observed["live"].items() if key.startswith("net.")}
        return [{"settings": live}] if live else None

    def apply(self, spec: dict[str, Any], changes: list[Change], ctx: Context) -> None:
        live = {c.field: c.new for c in changes if not c.field.endswith(PERSISTED)}
        if live:
            ctx.in_netns(_write_live, {k: spec["settings"][k] for k in live}, ctx.where())
        if spec["persist"]:
            files.rewrite(ctx, spec["persist"], lambda text: _render_persisted(text, spec["settings"]))


def _proc_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def _read_live(keys: list[str], where: str) -> dict[str, str]:
    values = {}
    for key in keys:
        try:
            values[key] = _normal(_proc_path(key).read_text())
        except FileNotFoundError:
            raise PermanentError(f"kernel parameter '{key}' does not exist {where}") from None
        except OSError as exc:
            raise files.os_error(exc, f"cannot read kernel parameter '{key}'") from None
    return values


def _write_live(settings: dict[str, str], where: str) -> None:
    for key, value in settings.items():
        try:
            _proc_path(key).write_text(value + "\n")
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise PermanentError(f"the kernel refused {key} = {preview(value)} {where}") from None
            raise files.os_error(exc, f"cannot set kernel parameter '{key}'") from None


def _normal(value: str) -> str:
    return " ".join(value.split())


def _parse_persisted(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and stripped[0] not in "#;" and "=" in stripped:
            key, _, value = stripped.partition("=")
            values[key.strip().lstrip("-")] = _normal(value)
    return values


def _render_persisted(text: str, settings: dict[str, str]) -> str:
    """Rewrite our keys where they stand, append the missing ones, leave other lines alone."""
    lines, written = [], set()
    for line in text.splitlines():
        stripped = line.strip()
        key = stripped.partition("=")[0].strip().lstrip("-") if "=" in stripped and stripped[0] not in "#;" else None
        if key in settings:
            if key not in written:
                lines.append(f"{key} = {settings[key]}")
                written.add(key)
            continue
        lines.append(line)
    lines += [f"{key} = {value}" for key, value in settings.items() if key not in written]
    return "\n".join(lines) + "\n"
