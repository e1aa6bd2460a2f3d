"""The ``file`` driver: a whole file's content, mode and owner.

Example::

    - id: dnsmasq-neutron
      driver: file
      path: /etc/neutron/dnsmasq-neutron.conf
      content: |
        dhcp-option-force=26,1454
      permissions: "0644"
"""

from __future__ import annotations

from typing import Any

from nodeagent.kit import files, fields
from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.kit.result import Change
from nodeagent.kit.errors import InvalidResource, preview


class FileDriver(Driver):
    """A file whose whole content is given (or that must not exist)."""

    phase = 10

    def validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        fields.check_fields(spec, "file", ["path"], ["content", "state", *fields.FILE_FIELDS])
        state = fields.choice(spec, "state", ["present", "absent"], "present")
        content = spec.get("content")
        if state == "present" and not isinstance(content, str):
            raise InvalidResource("content", f"must be the file's text, got {preview(content)}")
        if state == "present":
            fields.utf8_text(content, "content")
        if state == "absent" and content is not None:
            raise InvalidResource("content", "must not be given with state: absent")
        return {"path": fields.absolute_path(spec, "path"), "state": state, "content": content,
                **fields.file_metadata(spec)}

    def paths(self, spec: dict[str, Any]) -> list[tuple[str, bool]]:
        return [(spec["path"], True)]

    def observe(self, spec: dict[str, Any], ctx: Context) -> files.FileState:
        return files.read_file(ctx.host_path(spec["path"]))

    def diff(self, spec: dict[str, Any], observed: files.FileState) -> list[Change]:
        if spec["state"] == "absent":
            return [Change("state", "present", "absent")] if observed.exists else []
        change = files.content_change(spec["path"], observed.content, spec["content"].encode())
        return ([change] if change else []) + files.metadata_changes(spec, observed)

    def apply(self, spec: dict[str, Any], changes: list[Change], ctx: Context) -> None:
        path = ctx.host_path(spec["path"])
        if spec["state"] == "absent":
            files.remove(path, ctx.backup_path(spec["path"]))
            return
        files.converge(path, files.read_file(path), spec["content"].encode(), spec, ctx.backup_path(spec["path"]))
