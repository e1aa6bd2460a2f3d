"""Errors, split the way an operator needs them: bad input versus a failure on the node.

Every failure nodeagent reports on purpose is a ``NodeagentError``, here at the bottom of the layers so that
every part raises from one hierarchy and the command line maps it to an exit code in one place
(``cli/base.py``):

* ``InvalidInput`` (also a ``ValueError``): what was asked is wrong; nothing was changed.
  ``InvalidDocument`` and ``InvalidResource`` are the document's and a resource's.
* ``NotFound`` (also a ``LookupError``): no such node, document or state.
* ``Unavailable``: a service needed to answer cannot be reached or is not there (Neutron, the agent).
* ``DriverError`` (``TemporaryError``, ``PermanentError``, ``Conflict``, ``PathRefused``): acting on the node
  failed.
* beyond the kit: ``wire.protocol.Refused`` (a message that must not be acted on), the coordinator's
  ``NotSetUp``, ``FleetInconsistent``, ``PushFailed`` (``fleet/errors.py``).
"""

from __future__ import annotations

import reprlib
from typing import Any

PREVIEW_CHARS = 60  # a value shown in an error: enough to recognise it, never a 39 MB message
MESSAGE_CHARS = 500

# reprlib (the standard library's bounded repr) cuts strings, lists and nesting alike.
_PREVIEW = reprlib.Repr()
_PREVIEW.maxstring = _PREVIEW.maxother = _PREVIEW.maxlong = PREVIEW_CHARS
_PREVIEW.maxlist = _PREVIEW.maxtuple = _PREVIEW.maxdict = _PREVIEW.maxset = 4
_PREVIEW.maxlevel = 2


def preview(value: Any) -> str:
    """A short, one-line repr of a value for an error message, with its size when it was cut."""
    shown = _PREVIEW.repr(value)
    if isinstance(value, (str, bytes)) and len(value) > PREVIEW_CHARS:
        shown += f" ({len(value)} characters)"
    return shown


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """Any message as one bounded line: line breaks and control characters escaped, the rest cut."""
    cut = text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)


class NodeagentError(Exception):
    """A failure reported on purpose: its message is meant for the operator, as it is."""

    exit_code = 1


class InvalidInput(NodeagentError, ValueError):
    """What was asked is wrong (a value, a name, a column); nothing was changed."""


class NotFound(NodeagentError, LookupError):
    """No such node, document or state."""


class Unavailable(NodeagentError):
    """A service needed to answer cannot be reached, or is not there (Neutron, the agent's status)."""


class InvalidDocument(InvalidInput):
    """The desired-state document is wrong; nothing was touched. The message is always one bounded line."""

    def __init__(self, message: str = ""):
        super().__init__(one_line(str(message)))


class InvalidResource(InvalidDocument):
    """One field of one resource is wrong.

    Drivers raise it without the resource id; the model adds the id, so every
    message reads ``resource 'br-ex': field 'ports' must be ...``.
    """

    def __init__(self, field: str | None, problem: str, resource_id: str | None = None):
        self.field = field
        self.problem = problem
        self.resource_id = resource_id
        Exception.__init__(self, str(self))

    def with_resource(self, resource_id: str) -> "InvalidResource":
        return InvalidResource(self.field, self.problem, resource_id)

    def __str__(self) -> str:
        where = f"resource '{self.resource_id}'" if self.resource_id else "resource"
        if self.field:
            return one_line(f"{where}: field '{self.field}' {self.problem}")
        return one_line(f"{where}: {self.problem}")


class DriverError(NodeagentError):
    """Applying or observing a resource failed on the node.

    ``temporary`` tells the caller whether trying again later may succeed
    (a busy device, a daemon restarting) or whether someone has to act first.
    """

    temporary = False

    def __init__(self, message: str = ""):
        super().__init__(one_line(str(message)))

    @property
    def kind(self) -> str:
        return "temporary" if self.temporary else "permanent"


class TemporaryError(DriverError):
    """Retrying later may succeed: the enforcer looks again after ``delay`` seconds, or on its backoff
    schedule when the error names none (kopf's ``TemporaryError(delay=...)``)."""

    temporary = True

    def __init__(self, message: str = "", delay: float | None = None):
        super().__init__(message)
        self.delay = delay


class Conflict(TemporaryError):
    """Someone else changed the thing while the agent was changing it: looked at again, never overwritten unseen.

    Its kind is "conflict" so the drift guard counts it as fighting, like a correction.
    """

    @property
    def kind(self) -> str:
        return "conflict"


class PermanentError(DriverError):
    """Retrying will not help until the node or the document changes."""


class PathRefused(PermanentError):
    """A path lies outside the roots this agent may write."""
