"""The ``service`` driver: systemd units enabled or not, running or not, restarted when notified.

Example (the guide's ``systemctl enable --now neutron-l3-agent`` and its restart after a change)::

    - id: neutron-l3-agent
      driver: service
      name: neutron-l3-agent
      state: running
      enabled: true
    - id: l3-agent-ini
      driver: ini
      path: /etc/neutron/l3_agent.ini
      settings: {DEFAULT: {interface_driver: openvswitch}}
      notify: [neutron-l3-agent]     # restarted once, after the file, when it changed

Through systemd's own interface (``systemctl``; the context can prefix it to reach a
systemd in another namespace).
"""

from __future__ import annotations

import subprocess
from typing import Any

from nodeagent.kit import fields
from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.kit.result import Change
from nodeagent.kit.errors import PermanentError, TemporaryError
from nodeagent.kit.watches import Poll, Watch

_UNIT = r"[A-Za-z0-9:_.@-]{1,255}"
TIMEOUT = 90
POLL_INTERVAL = 10  # seconds between two looks at each unit's state


class ServiceDriver(Driver):
    """A systemd unit's enablement and activity."""

    phase = 90  # after the files and network objects it reads
    notifiable = True

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        fields.check_fields(spec, "service", ["name"], ["state", "enabled"])
        name = fields.text(spec, "name", _UNIT, "a systemd unit name")
        if "." not in name:
            name += ".service"
        return {"name": name, "state": fields.choice(spec, "state", ["running", "stopped"], "running"),
                "enabled": fields.flag(spec, "enabled", True) if "enabled" in spec else None}

    def observe(self, spec: dict[str, Any], ctx: Context) -> dict[str, str]:
        out = _systemctl(ctx, "show", spec["name"], "-p", "LoadState,ActiveState,UnitFileState").stdout
        found = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        if found.get("LoadState") == "not-found":
            raise PermanentError(f"unit {spec['name']} not found on this node")
        return found

    def diff(self, spec: dict[str, Any], observed: dict[str, str]) -> list[Change]:
        changes = []
        running = observed.get("ActiveState") in ("active", "activating", "reloading")
        if running != (spec["state"] == "running"):
            changes.append(Change("state", observed.get("ActiveState"), spec["state"]))
        if spec["enabled"] is not None:
            enabled = observed.get("UnitFileState") in ("enabled", "enabled-runtime", "alias")
            if enabled != spec["enabled"]:
                changes.append(Change("enabled", observed.get("UnitFileState"), str(spec["enabled"]).lower()))
        return changes

    def apply(self, spec: dict[str, Any], changes: list[Change], ctx: Context) -> None:
        fields_changed = {c.field for c in changes}
        if "enabled" in fields_changed:
            _systemctl(ctx, "enable" if spec["enabled"] else "disable", spec["name"])
        if "state" in fields_changed:
            _systemctl(ctx, "start" if spec["state"] == "running" else "stop", spec["name"])

    def notify(self, spec: dict[str, Any], ctx: Context) -> str:
        if spec["state"] != "running":
            return "not restarted: it is meant to be stopped"
        _systemctl(ctx, "restart", spec["name"])
        return "restarted"

    def watches(self, spec: dict[str, Any], ctx: Context) -> list[Watch]:
        # systemd's D-Bus signals are not reachable from here (a lab's systemd has no bus): poll, so that a
        # service that died or was stopped is seen within POLL_INTERVAL, not at the next full resync.
        return [Poll(POLL_INTERVAL)]


def _systemctl(ctx: Context, *args: str) -> subprocess.CompletedProcess:
    command = [*ctx.systemctl, *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    except FileNotFoundError:
        raise PermanentError(f"cannot run {command[0]}: not installed") from None
    except subprocess.TimeoutExpired:
        raise TemporaryError(f"systemctl {' '.join(args)} did not finish within {TIMEOUT} s") from None
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise PermanentError(f"systemctl {' '.join(args)} failed: {message[-1] if message else done.returncode}")
    return done
