"""The ``symlink`` driver: a symbolic link and where it points.

Example (the guide's ``ln -s plugins/ml2/ml2_conf.ini /etc/neutron/plugin.ini``)::

    - id: plugin-ini
      driver: symlink
      path: /etc/neutron/plugin.ini
      target: plugins/ml2/ml2_conf.ini
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nodeagent.kit import files, fields
from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.kit.result import Change
from nodeagent.kit.errors import InvalidResource, PathRefused, PermanentError, preview

NOT_A_LINK = "(not a symbolic link)"


class SymlinkDriver(Driver):
    """A link at ``path`` to ``target`` (relative targets are kept relative, as ``ln -s`` does)."""

    phase = 15

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        fields.check_fields(spec, "symlink", ["path"], ["target", "state"])
        state = fields.choice(spec, "state", ["present", "absent"], "present")
        target = spec.get("target")
        if state == "present" and (not isinstance(target, str) or not target):
            raise InvalidResource("target", f"must be the path the link points to, got {preview(target)}")
        if state == "present":
            fields.single_line(target, "target")
            fields.path_length(target, "target")
        return {"path": fields.absolute_path(spec, "path"), "target": target, "state": state}

    def paths(self, spec: dict[str, Any]) -> list[tuple[str, bool]]:
        return [(spec["path"], False)]

    def confine(self, spec: dict[str, Any], ctx: Context) -> None:
        super().confine(spec, ctx)
        if spec["state"] == "present":
            try:
                ctx.link_target(spec["path"], spec["target"])
            except PathRefused as exc:
                raise InvalidResource("target", f"is refused: {exc}") from None

    def observe(self, spec: dict[str, Any], ctx: Context) -> str | None:
        """The link's target, NOT_A_LINK for something else, None when nothing is there."""
        path = ctx.host_path(spec["path"], follow_final=False)
        if spec["state"] == "present":
            ctx.link_target(spec["path"], spec["target"])  # the agent has no preflight: refused here too
        if path.is_symlink():
            return os.readlink(path)
        if path.exists():
            return NOT_A_LINK
        return None

    def diff(self, spec: dict[str, Any], observed: str | None) -> list[Change]:
        wanted = spec["target"] if spec["state"] == "present" else None
        return [] if observed == wanted else [Change("target", observed, wanted)]

    def apply(self, spec: dict[str, Any], changes: list[Change], ctx: Context) -> None:
        path = ctx.host_path(spec["path"], follow_final=False)
        if path.is_dir() and not path.is_symlink():
            raise PermanentError(f"'{spec['path']}' is a directory; refusing to replace it with a link")
        if spec["state"] == "absent":
            files.remove(path, ctx.backup_path(spec["path"]))
            return
        files.make_parents(path.parent)
        if path.exists() and not path.is_symlink():
            backup = ctx.backup_path(spec["path"])
            if backup is not None:
                files.make_parents(backup.parent, files.BACKUP_DIR_MODE)
                os.replace(path, backup)
        # A link cannot be overwritten in place: make it beside, then rename over.
        temporary = files.link_temporary(path)
        try:
            if temporary.is_symlink():
                temporary.unlink()
            os.symlink(spec["target"], temporary)
            os.replace(temporary, path)
            files.sync_directory(path.parent)
        except OSError as exc:
            Path(temporary).unlink(missing_ok=True)
            raise files.os_error(exc, f"cannot link '{spec['path']}'") from None
