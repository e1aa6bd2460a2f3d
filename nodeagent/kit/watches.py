"""What a driver watches, as small values: the watch hub (``nodeagent.node.watchhub``) runs the listeners.

A driver only says what of a resource's real state the node announces, and where:
a file, a kernel link, the kernel's netconf messages, an OVSDB row, or nothing (a poll).
The hub runs one listener per source for every resource of the node (one inotify
observer, one netlink socket per namespace, one event handler per OVSDB connection,
one poller) and hands the enforcer ``Touch`` values on one queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union


@dataclass(frozen=True)
class File:
    """A file, by its real path (``ctx.host_path``): written, replaced or removed."""

    path: Path


@dataclass(frozen=True)
class Link:
    """A kernel link by name in a namespace: its state, its IPv4 addresses, and the links whose master it is."""

    name: str
    netns: str | None = None


@dataclass(frozen=True)
class Netconf:
    """The kernel's IPv4 netconf announcements in a namespace (forwarding, rp_filter, mc_forwarding).

    Any netconf message touches the resource: they are rare, and the resource's own diff tells what changed.
    """

    netns: str | None = None


@dataclass(frozen=True)
class Sysctl:
    """A kernel setting by its key (``net.ipv4.ip_forward``) in a namespace, written through ``/proc/sys``: heard
    with its writer where the node has fanotify, and nowhere else (declare ``Netconf`` or ``Poll`` as well)."""

    key: str
    netns: str | None = None


@dataclass(frozen=True)
class Row:
    """An OVSDB row by table and name on a database connection; after a reconnect, every watched row."""

    table: str
    name: str
    connection: str


@dataclass(frozen=True)
class Poll:
    """State the node announces nowhere: looked at every ``interval`` seconds."""

    interval: float


Watch = Union[File, Link, Netconf, Sysctl, Row, Poll]


@dataclass(frozen=True)
class Touch:
    """What the hub hands the enforcer: these resources may have changed; an event said so at ``at``
    (wall clock, for the drift record) and ``clock`` (monotonic, for the debounce); ``by``: who made the
    change, where the source can tell (a ``wire.messages.Writer``; fanotify can, inotify and netlink cannot)."""

    resources: tuple[str, ...]
    at: float
    clock: float
    by: object | None = None
