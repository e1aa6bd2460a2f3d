"""Why a drift's ``by`` is unknown when no event named a writer, said honestly, per kind of source.

Files and ``/proc/sys`` settings are named through fanotify (``fanwatch``). Links, addresses, bridges
and OVSDB rows are not: rtnetlink broadcasts carry pid 0 and OVSDB updates no process at all. The
audit subsystem could name a process behind a netlink request, but not per object (an audit rule
cannot match a link's name inside a netlink message: only every ``sendmsg`` of the node) and only
with auditing enabled for the whole kernel; the agent does neither. ``audit_state`` says what this
kernel has, for ``nodeagent status``.
"""

from __future__ import annotations

import functools
import socket
import struct

from nodeagent.kit.watches import File, Sysctl
from nodeagent.wire.messages import Writer

NETWORK = "netlink and OVSDB events name no process"
RESYNC = "found by a resync or a retry: no event named a writer"
NETLINK_AUDIT, AUDIT_GET = 9, 1000
_NLMSGHDR = struct.Struct("=IHHII")


def unknown(kinds: set[type], files_by: str) -> Writer:
    """The ``by`` of a drift no event named anyone for, given how its resource is watched."""
    if kinds & {File, Sysctl}:
        return Writer(unknown=RESYNC if files_by.startswith("fanotify") else files_by)
    return Writer(unknown=NETWORK)


def network_line() -> str:
    """How network changes are heard, for ``nodeagent status``."""
    return (f"netlink and OVSDB events (writers not named: they carry no process; kernel audit {audit_state()}, "
            "not used: it could name one only by auditing every netlink request of the node)")


@functools.cache
def audit_state() -> str:
    """``enabled``, ``disabled`` or ``unavailable (...)``: the kernel's audit status, read once (AUDIT_GET)."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT) as audit:
            audit.settimeout(1)
            audit.bind((0, 0))
            audit.send(_NLMSGHDR.pack(_NLMSGHDR.size, AUDIT_GET, 0x1, 1, 0))  # NLM_F_REQUEST
            while True:
                data = audit.recv(65536)
                kind = _NLMSGHDR.unpack_from(data)[1]
                if kind == AUDIT_GET:
                    enabled = struct.unpack_from("=II", data, _NLMSGHDR.size)[1]
                    return "enabled" if enabled else "disabled"
                if kind == 2 and struct.unpack_from("=i", data, _NLMSGHDR.size)[0] < 0:  # NLMSG_ERROR
                    return "unavailable (refused)"
    except OSError as exc:
        return f"unavailable ({exc.strerror or exc})"
