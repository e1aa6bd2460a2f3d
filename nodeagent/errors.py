"""Errors, split the way an operator needs them: bad input versus a failure on the node."""

from __future__ import annotations


class InvalidDocument(Exception):
    """The desired-state document is wrong; nothing was touched."""


class InvalidResource(InvalidDocument):
    """One field of one resource is wrong.

    Drivers raise it without the resource id; the model adds the id, so every
    message reads ``resource 'br-ex': field 'ports' must be ...``.
    """

    def __init__(self, field: str | None, problem: str, resource_id: str | None = None):
        self.field = field
        self.problem = problem
        self.resource_id = resource_id
        super().__init__(str(self))

    def with_resource(self, resource_id: str) -> "InvalidResource":
        return InvalidResource(self.field, self.problem, resource_id)

    def __str__(self) -> str:
        where = f"resource '{self.resource_id}'" if self.resource_id else "resource"
        if self.field:
            return f"{where}: field '{self.field}' {self.problem}"
        return f"{where}: {self.problem}"


class DriverError(Exception):
    """Applying or observing a resource failed on the node.

    ``temporary`` tells the caller whether trying again later may succeed
    (a busy device, a daemon restarting) or whether someone has to act first.
    """

    temporary = False

    @property
    def kind(self) -> str:
        return "temporary" if self.temporary else "permanent"


class TemporaryError(DriverError):
    """Retrying later may succeed."""

    temporary = True


class PermanentError(DriverError):
    """Retrying will not help until the node or the document changes."""


class PathRefused(PermanentError):
    """A path lies outside the roots this agent may write."""
