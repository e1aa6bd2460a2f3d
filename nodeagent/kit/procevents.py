"""The kernel's process events (the netlink proc connector): every fork, exec and exit on the node, as it happens.

What a fanotify event cannot give: a writer such as ``sed -i`` or ``sh -c 'echo >> f'`` has exited,
and been reaped, before its event is read, and a pidfd cannot be made for a reaped process. The
proc connector says at exit who the parent was (in the event itself, no race), and at exec is the
moment to read the new program's command line. Written on ``socket`` and ``struct``: the message
layout is three fixed structs. Needs CAP_NET_ADMIN in the initial network namespace.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from typing import Iterator

NETLINK_CONNECTOR, CN_IDX_PROC, CN_VAL_PROC = 11, 1, 1
NLMSG_DONE = 3
PROC_CN_MCAST_LISTEN, PROC_CN_MCAST_IGNORE = 1, 2
FORK, EXEC, EXIT = 0x1, 0x2, 0x80000000
EVERY = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")  # cb_id (idx, val), seq, ack, len, flags
_EVENT = struct.Struct("=IIQ")  # what, cpu, timestamp_ns
_FORK = struct.Struct("=IIII")  # parent pid, parent tgid, child pid, child tgid
_EXEC = struct.Struct("=II")  # pid, tgid
_EXIT = struct.Struct("=IIIIII")  # pid, tgid, exit code, exit signal, parent pid, parent tgid


@dataclass(frozen=True)
class ProcessEvent:
    """``FORK`` (``pid`` the child, ``parent``), ``EXEC`` (``pid``) or ``EXIT`` (``pid``, its ``parent``),
    by process (thread-group) id; threads' own forks and exits are left out."""

    what: int
    pid: int
    parent: int = 0


class ProcessEvents:
    """A subscription to the proc connector; ``close`` ends it (the kernel counts listeners).

    ``only``: the kinds of event wanted (``EXEC | EXIT``...), filtered by the kernel from Linux 6.6 on, so a
    listener of execs is not woken by every thread's birth and death; older kernels send every kind."""

    def __init__(self, only: int = EVERY) -> None:
        self.only = only if _filters() else EVERY
        self.socket = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        try:
            self.socket.bind((0, CN_IDX_PROC))
            self._send(PROC_CN_MCAST_LISTEN)
        except OSError:
            self.socket.close()
            raise
        self.socket.setblocking(False)

    def fileno(self) -> int:
        return self.socket.fileno()

    def _send(self, operation: int) -> None:
        request = struct.pack("=I", operation) + (struct.pack("=I", self.only) if self.only != EVERY else b"")
        payload = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(request), 0) + request
        self.socket.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(payload), NLMSG_DONE, 0, 0, 0) + payload)

    def read(self) -> list[ProcessEvent]:
        """The events waiting (an empty list when none is)."""
        found: list[ProcessEvent] = []
        while True:
            try:
                data = self.socket.recv(65536)
            except (BlockingIOError, InterruptedError):
                return found
            except OSError:  # ENOBUFS: events were lost while the reader was busy; the next ones still come
                return found
            found.extend(_parse(data))

    def close(self) -> None:
        try:
            self.socket.setblocking(True)
            self._send(PROC_CN_MCAST_IGNORE)
        except OSError:
            pass
        self.socket.close()


def _filters() -> bool:
    """The kernel takes an event filter with the subscription (``struct proc_input``, Linux 6.6)."""
    try:
        return tuple(int(part) for part in os.uname().release.split("-")[0].split(".")[:2]) >= (6, 6)
    except ValueError:
        return False


def _parse(data: bytes) -> Iterator[ProcessEvent]:
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length = _NLMSGHDR.unpack_from(data, offset)[0]
        at = offset + _NLMSGHDR.size + _CN_MSG.size
        if at + _EVENT.size <= len(data):
            what = _EVENT.unpack_from(data, at)[0]
            body = at + _EVENT.size
            if what == FORK:
                _, parent, pid, tgid = _FORK.unpack_from(data, body)
                if pid == tgid:  # a new process, not a new thread
                    yield ProcessEvent(FORK, pid, parent)
            elif what == EXEC:
                yield ProcessEvent(EXEC, _EXEC.unpack_from(data, body)[1])
            elif what == EXIT:
                pid, tgid, _, _, _, parent = _EXIT.unpack_from(data, body)
                if pid == tgid:
                    yield ProcessEvent(EXIT, pid, parent)
        offset = (offset + max(length, _NLMSGHDR.size) + 3) & ~3  # messages are 4-byte aligned
