"""The values that cross between a node and the coordinator, each with one shape on the wire and on disk.

A message is a small frozen dataclass. ``to_dict()`` gives its JSON shape (with
``version``); ``from_dict()`` checks every field and raises ``Malformed`` naming the
message and the field, so a forged or broken message is refused (``Malformed`` is a
``trust.Refused``) and recorded, never half-read. A dict without ``version`` is read
as version 1: the shape these values had before they were versioned (spooled events
from before an upgrade still go out).

The checks are written here rather than taken from a validation library: the field
types used are few (text, numbers, lists, JSON objects, nested messages), and the
error must name the message and the field the way every other refusal here does.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import types
import typing
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from nodeagent.kit.errors import preview
from nodeagent.kit.result import ReconcileResult, ResourceResult, Status
from nodeagent.wire.trust import Refused

M = TypeVar("M", bound="Message")
LIMIT = 2 ** 62  # integers beyond this are nonsense in a report and overflow a database column

CORRECTED, LEFT, CONTESTED, FAILED = "corrected", "left", "contested", "failed"
IGNORED = "ignored"  # left because its writer is one the node's drift_ignore_from names


class Malformed(Refused):
    """A message that does not have its type's shape: the text names the message, the field and what is wrong."""

    def __init__(self, message: str, path: str, problem: str):
        self.message, self.path, self.problem = message, path, problem
        super().__init__(f"malformed {message}: {path or 'the message'} {problem}")


SENT_IF_SET = {"sent_if_set": True}  # field metadata: left out of the message while it holds its default


def limited(most: int | None = None, choices: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Field metadata: a longest length for text, or the only values allowed."""
    return {"most": most, "choices": choices}


@dataclass(frozen=True, kw_only=True)
class Message:
    """What every message shares: one ``to_dict``, one checking ``from_dict``."""

    NAME: ClassVar[str] = "message"
    VERSION: ClassVar[int] = 1

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": self.VERSION}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.metadata.get("sent_if_set") and value == item.default:
                continue  # a field added later: a side that does not know it reads the message as before
            data[item.name] = _plain(value)
        return data

    @classmethod
    def from_dict(cls: type[M], data: Any) -> M:
        return cls._read(data, cls.NAME, "")

    @classmethod
    def _read(cls: type[M], data: Any, name: str, path: str) -> M:
        if not isinstance(data, dict):
            raise Malformed(name, path, f"is {preview(data)}, not an object")
        version = data.get("version", 1)
        if version != cls.VERSION:
            raise Malformed(name, _join(path, "version"), f"is {preview(version)}: this side reads "
                                                          f"{cls.NAME} version {cls.VERSION} only")
        known = _schema(cls)
        unknown = sorted(str(key) for key in data if key not in known and key != "version")
        if unknown:
            raise Malformed(name, _join(path, unknown[0]), "is not a field of this message")
        values = {}
        for key, (kind, required, meta) in known.items():
            if key in data:
                values[key] = _check(data[key], kind, name, _join(path, key), meta)
            elif required:
                raise Malformed(name, _join(path, key), "is missing")
        message = cls(**values)
        message._agree(name, path)
        return message

    def _agree(self, name: str, path: str) -> None:
        """Checks across fields, after each field was read; Malformed when they disagree."""


@functools.cache
def _schema(cls: type) -> dict[str, tuple[Any, bool, Any]]:
    """Each field's type, whether it is required, and its limits (type hints are slow to resolve: once)."""
    hints = typing.get_type_hints(cls)
    return {item.name: (hints[item.name], item.default is dataclasses.MISSING
                        and item.default_factory is dataclasses.MISSING, item.metadata)
            for item in dataclasses.fields(cls)}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@functools.cache
def _shape(kind: Any) -> tuple[bool, Any, Any, tuple[Any, ...]]:
    """A type hint taken apart once: (None allowed, the type, its origin, its arguments)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    optional = origin in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        kind = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(kind), typing.get_args(kind)
    return optional, kind, origin, args


def _check(value: Any, hint: Any, name: str, path: str, meta: Any = None) -> Any:
    """``value`` as ``hint`` (a field's type hint), or Malformed."""
    optional, kind, origin, args = _shape(hint)
    if (value is None and optional) or kind is Any:
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise Malformed(name, path, f"is {preview(value)}, not a list")
        return tuple(_check(v, args[0], name, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise Malformed(name, path, f"is {preview(value)}, not an object with text keys")
        return value if args[1] is Any else {k: _check(v, args[1], name, f"{path}.{k}") for k, v in value.items()}
    if issubclass(kind, Message):
        return kind._read(value, name, path)
    return _scalar(value, kind, name, path, meta or {})


def _scalar(value: Any, kind: type, name: str, path: str, meta: Any) -> Any:
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or abs(value) > LIMIT:
            raise Malformed(name, path, f"is {preview(value)}, not a finite number")
        return float(value)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int) or abs(value) > LIMIT):
        raise Malformed(name, path, f"is {preview(value)}, not an integer")
    if not isinstance(value, kind):
        raise Malformed(name, path, f"is {preview(value)}, not {kind.__name__}")
    if meta.get("choices") and value not in meta["choices"]:
        raise Malformed(name, path, f"is {preview(value)}, not one of {', '.join(meta['choices'])}")
    if meta.get("most") and len(value) > meta["most"]:
        raise Malformed(name, path, f"is {len(value)} characters long, more than {meta['most']}")
    return value


def new_id() -> str:
    """A message's identity: the receiver keeps each once, however often it is resent."""
    return uuid.uuid4().hex


# -- drift ---------------------------------------------------------------------------------------
def _shown(value: str | None) -> str:
    return "(absent)" if value is None else value


@dataclass(frozen=True, kw_only=True)
class DriftChange(Message):
    """One field of a drifted resource: what the document wants, what was found (both already redacted)."""

    NAME: ClassVar[str] = "drift change"

    field: str
    expected: str | None
    found: str | None

    def describe(self) -> str:
        """The one way a drifted field is shown: the agent's log, events, ``nodeagent status``, ``drift list``."""
        return f"{self.field}: found {_shown(self.found)}, expected {_shown(self.expected)}"


@dataclass(frozen=True, kw_only=True)
class Writer(Message):
    """Who changed a resource behind the agent's back, as far as the node could tell (``by`` of a drift).

    Read from ``/proc`` when the change was announced (fanotify names the process); ``exited``: the process
    was gone by then, and only its pid is known; ``unknown``: why no process could be named at all
    (inotify names none, rtnetlink none without the audit subsystem). The command line is scrubbed of the
    document's secrets before it leaves the agent."""

    NAME: ClassVar[str] = "writer"

    pid: int | None = None
    command: str | None = field(default=None, metadata=limited(1024))
    executable: str | None = field(default=None, metadata=limited(4096))
    unit: str | None = field(default=None, metadata=limited(256))  # systemd unit, from /proc/PID/cgroup
    user: str | None = field(default=None, metadata=limited(64))  # login user (loginuid), else the uid's name
    parents: tuple[str, ...] = ()  # "bash[812]", nearest first, up to the unit's top process
    exited: bool = False
    unknown: str | None = field(default=None, metadata=limited(256))

    def describe(self) -> str:
        """``python3 /tmp/w.py --edit[4242] (user alice, unit nova.service, via bash[4200])``, or why unknown."""
        if self.unknown:
            return f"unknown ({self.unknown})"
        who = self.command or self.executable or "a process"
        who += f"[{self.pid}]" if self.pid is not None else ""
        extra = [f"user {self.user}"] if self.user else []
        extra += [f"unit {self.unit}"] if self.unit else []
        extra += [f"via {' < '.join(self.parents)}"] if self.parents else []
        extra += ["exited before it could be read"] if self.exited else []
        return f"{who} ({', '.join(extra)})" if extra else who


@dataclass(frozen=True, kw_only=True)
class DriftEvent(Message):
    """One drift of one resource: what was expected, what was found (redacted), and what became of it."""

    NAME: ClassVar[str] = "drift event"

    node: str = field(metadata=limited(253))
    resource: str = field(metadata=limited(128))
    driver: str = field(metadata=limited(64))
    generation: int
    # corrected (enforce), left (monitor), contested (backed off), failed (could not fix), ignored (its writer
    # is expected: drift_ignore_from)
    state: str = field(metadata=limited(choices=(CORRECTED, LEFT, CONTESTED, FAILED, IGNORED)))
    changes: tuple[DriftChange, ...]
    seen_at: float
    fixed_at: float | None = None
    error: str | None = None
    id: str = field(metadata=limited(32))  # the coordinator keeps a drift once, however often it is resent
    by: Writer | None = None  # who made the change, when the event that announced it could tell

    @classmethod
    def from_result(cls, node: str, generation: int, result: ResourceResult, seen_at: float,
                    contested: bool, by: Writer | None = None, ignored: bool = False) -> "DriftEvent":
        changes = tuple(DriftChange(field=c.field, expected=c.new, found=c.old) for c in result.changes)
        if contested:
            state = CONTESTED
        elif result.status is Status.CHANGED:
            state = CORRECTED
        elif result.status is Status.DRIFTED:
            state = IGNORED if ignored else LEFT
        else:
            state = FAILED
        return cls(node=node, resource=result.id, driver=result.driver, generation=generation, state=state,
                   changes=changes, seen_at=seen_at, fixed_at=time.time() if state == CORRECTED else None,
                   error=result.error, id=new_id(), by=by)

    def lines(self) -> list[str]:
        """Each changed field, then the error if the agent could not fix it."""
        return [change.describe() for change in self.changes] + ([f"error: {self.error}"] if self.error else [])

    def outcome(self) -> str:
        """``corrected: DEFAULT.debug: found true, expected false`` (where the resource is already named)."""
        return f"{self.state}: {'; '.join(self.lines()) or 'changed'}{self.by_whom()}"

    def by_whom(self) -> str:
        """`` by vi /etc/neutron/neutron.conf[812] (user alice)``, or nothing when no event named anyone."""
        return f" by {self.by.describe()}" if self.by is not None else ""

    def describe(self) -> str:
        """One line: ``neutron-conf corrected: DEFAULT.debug: found true, expected false by vi[812] (...)``."""
        return f"{self.resource} {self.outcome()}"


# -- what an agent sends -------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Event(Message):
    """Something an agent recorded for the coordinator (spooled, sent with reports until acknowledged)."""

    NAME: ClassVar[str] = "event"

    id: str = field(metadata=limited(32))  # the coordinator keeps an event once, however often it is resent
    type: str = field(metadata=limited(64))
    detail: str
    at: float = field(default_factory=time.time)
    drift: DriftEvent | None = None


@dataclass(frozen=True, kw_only=True)
class Rollback(Message):
    """A generation the agent rolled back: a probe that answered before its network change did not after it."""

    NAME: ClassVar[str] = "rollback"

    generation: int  # the generation rolled back (the agent holds the one before it, and never re-applies this one)
    probe: str = field(metadata=limited(64))  # the probe that failed: "broker", a document probe's id, "interrupted"
    detail: str = field(metadata=limited(1000))  # why, one line, already redacted
    at: float
    restored: bool  # the probes answered again after the restore

    def describe(self) -> str:
        """``generation 7 rolled back: probe gw failed: ...`` (the event's detail, ``nodeagent status``)."""
        return f"generation {self.generation} rolled back: probe {self.probe} failed: {self.detail}"


@dataclass(frozen=True, kw_only=True)
class AgentStatus(Message):
    """Where an agent stands: the generation it holds and its resources' states (reported and in status.json)."""

    NAME: ClassVar[str] = "agent status"

    generation: int = 0
    mode: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    failed: tuple[str, ...] = ()
    drifted: tuple[str, ...] = ()
    contested: tuple[str, ...] = ()
    reconciled_at: float | None = None
    reconciled_generation: int = 0
    rolled_back: Rollback | None = None  # the last generation given that was rolled back, until a newer one is kept

    def counted(self) -> str:
        """``5 in_sync, 1 changed``: the states that have resources."""
        return ", ".join(f"{n} {k}" for k, n in self.counts.items() if n)

    def line(self) -> str:
        """``generation 3: 5 in_sync, 1 changed`` (systemd's STATUS= line)."""
        return f"generation {self.generation}: {self.counted() or 'no document'}"


@dataclass(frozen=True, kw_only=True)
class ResourceView(Message):
    """One resource in the agent's local view."""

    NAME: ClassVar[str] = "resource view"

    id: str
    driver: str
    mode: str
    status: str
    backed_off: bool = False


@dataclass(frozen=True, kw_only=True)
class LocalView(AgentStatus):
    """``status.json``: the agent's status, its resources and its last drift events (``nodeagent status``)."""

    NAME: ClassVar[str] = "status.json"

    node: str
    resources: tuple[ResourceView, ...] = ()
    drift: tuple[DriftEvent, ...] = ()
    attribution: dict[str, str] = field(default_factory=dict)  # how writers are named: file, network

    def last_drift(self) -> dict[str, DriftEvent]:
        """Each resource's newest drift event."""
        return {event.resource: event for event in self.drift}


@dataclass(frozen=True, kw_only=True)
class Request(Message):
    """An agent's signed request (``fetch_state``): who, a sequence above the last (no replay), its keys."""

    NAME: ClassVar[str] = "request"

    node: str = field(metadata=limited(253))
    seq: int
    sent_at: float | None = None
    box_key: str | None = field(default=None, metadata=limited(100))  # where to encrypt documents for it
    rekey: dict[str, Any] | None = None  # the previous key's endorsement of a new one (trust.endorse)


@dataclass(frozen=True, kw_only=True)
class Report(Request):
    """The heartbeat (``report_state``): status, health, new events, and facts when they changed."""

    NAME: ClassVar[str] = "report"

    status: AgentStatus = field(default_factory=AgentStatus)
    health: dict[str, Any] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    facts: dict[str, Any] | None = None
    # The newest generation the agent has: the one it enforces, one it is applying, or one it rolled back (its
    # status says only the first). Below the node's desired generation: it missed a push, and is asked for a
    # full report, whose answer makes it pull.
    held: int | None = None

    def _agree(self, name: str, path: str) -> None:
        for number, event in enumerate(self.events):
            if event.drift is not None and event.drift.node != self.node:
                raise Malformed(name, _join(path, f"events[{number}].drift.node"),
                                f"is {preview(event.drift.node)}, not the reporting node {preview(self.node)}")


# -- what the coordinator answers ----------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ReportAnswer(Message):
    """The coordinator's answer to a report: the node's standing, and the generation it should hold."""

    NAME: ClassVar[str] = "report answer"

    status: str = field(metadata=limited(choices=("new", "alive", "revived", "pending", "refused")))
    desired_generation: int | None = None
    reason: str | None = None
    # Cast plain heartbeats from now on (the coordinators take them in batches). Offered only to an agent whose
    # report says ``held``, so only to an agent that reads this field, and sent only when set.
    cast: bool = field(default=False, metadata=SENT_IF_SET)

    @property
    def taken(self) -> bool:
        """The coordinator kept what the report carried: its events may leave the spool."""
        return self.status not in ("pending", "refused")


# -- what an agent answers the coordinator ---------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Refusal(Message):
    """An agent's answer to a request it refused (bad signature, too old, a document not for it)."""

    NAME: ClassVar[str] = "refusal"

    refused: str


@dataclass(frozen=True, kw_only=True)
class PlannedChange(Message):
    """One difference a plan found (already redacted), as ``Change.to_dict()`` gives it."""

    NAME: ClassVar[str] = "planned change"

    field: str
    old: str | None
    new: str | None
    diff: str | None = None


@dataclass(frozen=True, kw_only=True)
class ResourcePlan(Message):
    """One resource of a plan, as ``ResourceResult.to_dict()`` gives it."""

    NAME: ClassVar[str] = "resource plan"

    id: str
    driver: str
    status: str = field(metadata=limited(choices=tuple(s.value for s in Status)))
    changes: tuple[PlannedChange, ...] = ()
    error: str | None = None
    error_kind: str | None = None
    duration: float = 0.0
    notified: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Plan(Message):
    """An agent's answer to ``plan_state``: what its reconcile would change, nothing applied."""

    NAME: ClassVar[str] = "plan"

    node: str
    generation: int
    dry_run: bool
    started_at: float
    duration: float
    counts: dict[str, int] = field(default_factory=dict)
    resources: tuple[ResourcePlan, ...] = ()

    @classmethod
    def of(cls, result: ReconcileResult) -> "Plan":
        """The plan a reconcile result tells (its ``to_dict()`` is this message's shape)."""
        return cls.from_dict(result.to_dict())


def plan_or_refusal(answer: Any) -> Plan | Refusal:
    """An agent's answer to a plan request, read as whichever of the two it says it is."""
    return Refusal.from_dict(answer) if isinstance(answer, dict) and "refused" in answer else Plan.from_dict(answer)
