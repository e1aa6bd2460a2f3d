"""The ``command`` driver: a one-time step, run only when its guard says it is needed.

Examples (the controller's database step, and the schema upgrade after neutron.conf changed)::

    - id: neutron-database
      driver: command
      command: [mysql, -e, "CREATE DATABASE neutron; GRANT ALL ON neutron.* TO 'neutron'@'%' IDENTIFIED BY 's3cret'"]
      unless: [mysql, -e, "USE neutron"]       # already there: nothing to do
      timeout: 60
      sensitive: true
    - id: neutron-db-upgrade
      driver: command
      command: [neutron-db-manage, --config-file, /etc/neutron/neutron.conf, upgrade, head]
      refresh_only: true                        # runs when a resource that notifies it changed

A command is a list (run as is) or a string (run by /bin/sh -c). ``creates`` is a path
(under the context's root) whose existence means done. One of ``unless``, ``creates``
or ``refresh_only`` is required, or the command would run at every reconcile.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

from nodeagent.kit import fields
from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.kit.result import Change
from nodeagent.kit.errors import InvalidResource, PermanentError, TemporaryError, preview


class CommandDriver(Driver):
    """A guarded command; its output is kept for the result, its secrets masked by the engine."""

    phase = 80
    notifiable = True

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        fields.check_fields(spec, "command", ["command"],
                            ["unless", "creates", "refresh_only", "timeout", "environment"])
        normal = {"command": _command(spec, "command"),
                  "unless": _command(spec, "unless") if "unless" in spec else None,
                  "creates": fields.absolute_path(spec, "creates") if "creates" in spec else None,
                  "refresh_only": fields.flag(spec, "refresh_only", False),
                  "timeout": fields.integer(spec, "timeout", 1, 86400, 300)}
        environment = spec.get("environment", {})
        if not isinstance(environment, dict) or not all(
                isinstance(k, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) and isinstance(v, (str, int))
                for k, v in environment.items()):
            raise InvalidResource("environment", f"must be a mapping of names to strings, got {preview(environment)}")
        normal["environment"] = {k: fields.no_nul(str(v), f"environment.{k}") for k, v in environment.items()}
        if not (normal["unless"] or normal["creates"] or normal["refresh_only"]):
            raise InvalidResource(None, "a command needs 'unless', 'creates' or 'refresh_only', "
                                  "or it would run at every reconcile")
        return normal

    def secret_values(self, spec: dict[str, Any], field: str) -> list[str]:
        value = spec.get(field)
        if field not in ("command", "unless", "environment") or value is None:
            raise InvalidResource("sensitive", f"names '{field}', which is not a field of this resource")
        if isinstance(value, dict):
            return list(value.values())
        return value if isinstance(value, list) else [value]

    def sensitive_leaves(self, spec: dict[str, Any]) -> list[Any]:
        """Everything but the programs' names, so an error still says which program failed."""
        programs = {c[0] for c in (spec["command"], spec["unless"]) if isinstance(c, list)}
        return [leaf for leaf in super().sensitive_leaves(spec) if leaf not in programs]

    def observe(self, spec: dict[str, Any], ctx: Context) -> dict[str, Any]:
        """Whether the command is needed now (its guard), without running the command itself."""
        if spec["refresh_only"]:
            return {"needed": False}
        if spec["creates"] and ctx.root.joinpath(spec["creates"].lstrip("/")).exists():
            return {"needed": False}
        if spec["unless"]:
            done = _run(spec["unless"], spec, ctx, check=False)
            return {"needed": done.returncode != 0}
        return {"needed": True}

    def diff(self, spec: dict[str, Any], observed: dict[str, Any]) -> list[Change]:
        if not observed["needed"]:
            return []
        shown = spec["command"] if isinstance(spec["command"], str) else " ".join(spec["command"])
        return [Change("command", None, shown)]

    def apply(self, spec: dict[str, Any], changes: list[Change], ctx: Context) -> None:
        _run(spec["command"], spec, ctx)

    def notify(self, spec: dict[str, Any], ctx: Context) -> str:
        output = _run(spec["command"], spec, ctx).stdout.strip().splitlines()
        return f"ran{': ' + output[-1] if output else ''}"


def _command(spec: dict[str, Any], name: str) -> str | list[str]:
    value = spec.get(name)
    if isinstance(value, str) and value.strip():
        return fields.no_nul(value, name)
    if isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
        return [fields.no_nul(str(v), name) for v in value]
    raise InvalidResource(name, f"must be a command line (a string) or its arguments (a list), got {preview(value)}")


def _run(command: str | list[str], spec: dict[str, Any], ctx: Context, check: bool = True
         ) -> subprocess.CompletedProcess:
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else command
    environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                   **spec["environment"]}
    try:
        done = subprocess.run([*ctx.command_prefix, *argv], capture_output=True, text=True, timeout=spec["timeout"], env=environment,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise PermanentError(f"cannot run {argv[0]}: not found") from None
    except subprocess.TimeoutExpired:
        raise TemporaryError(f"{argv[0]} did not finish within {spec['timeout']} s") from None
    if check and done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise PermanentError(f"{argv[0]} exited with {done.returncode}: {tail or 'no output'}")
    return done
