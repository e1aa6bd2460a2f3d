"""fanotify(7) for the watch hub: file events in watched directories that say which process made them.

Written here on ``ctypes`` and ``os`` rather than taken from a library: the one binding on PyPI
(pyfanotify 0.3) runs its listener in a forked process behind a socket and cannot ask for the
directory-and-name records (``FAN_REPORT_DFID_NAME``, which report renames into place) nor for
pidfds (``FAN_REPORT_PIDFD``); the kernel interface needed is two calls from libc and one
fixed record layout.

Needs CAP_SYS_ADMIN (``FAN_REPORT_DFID_NAME`` and ``FAN_REPORT_PIDFD`` groups are for root only);
``Fanotify()`` raises ``OSError`` where it cannot be had, and the caller falls back to inotify.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from dataclasses import dataclass
from typing import Iterator

FAN_CLOEXEC, FAN_NONBLOCK = 0x1, 0x2
FAN_REPORT_PIDFD = 0x80  # Linux 5.15
FAN_REPORT_DFID_NAME = 0x400 | 0x800  # Linux 5.9: the directory's handle and the entry's name
FAN_MARK_ADD = 0x1
FAN_MODIFY, FAN_ATTRIB, FAN_CLOSE_WRITE = 0x2, 0x4, 0x8
FAN_MOVED_FROM, FAN_MOVED_TO, FAN_CREATE, FAN_DELETE = 0x40, 0x80, 0x100, 0x200
FAN_Q_OVERFLOW = 0x4000
FAN_EVENT_ON_CHILD = 0x08000000
# Written, replaced, removed, or its mode or owner changed: what inotify reported to the hub before.
CHANGES = FAN_MODIFY | FAN_ATTRIB | FAN_CLOSE_WRITE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_CREATE | FAN_DELETE
INFO_DFID_NAME, INFO_PIDFD = 2, 4
FAN_NOPIDFD, FAN_EPIDFD = -1, -2  # the process was already gone (reaped) when the event was read; an error
AT_FDCWD = -100
AT_HANDLE_FID = 0x200  # Linux 6.5
MAX_HANDLE_SZ = 128

_METADATA = struct.Struct("=IBBHQiI")  # event_len, vers, reserved, metadata_len, mask, fd, pid
_INFO_HEADER = struct.Struct("=BBH")  # info_type, pad, len
_HANDLE = struct.Struct("=Ii")  # handle_bytes, handle_type

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
_libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
_libc.name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p,
                                    ctypes.POINTER(ctypes.c_int), ctypes.c_int]


@dataclass(frozen=True)
class FileEvent:
    """One event: what happened (``mask``), to which entry of which watched directory, by which process.

    ``pidfd`` is an open pidfd of the process (the caller closes it), ``FAN_NOPIDFD`` when the process was
    reaped before the event was read, or None where the kernel has no ``FAN_REPORT_PIDFD``."""

    mask: int
    pid: int
    directory: str | None  # None: a directory no mark of ours names (or an overflow)
    name: str
    pidfd: int | None

    @property
    def overflow(self) -> bool:
        return bool(self.mask & FAN_Q_OVERFLOW)

    @property
    def in_progress(self) -> bool:
        """Only written to: the writer may still be at it (its close-write says when the file is whole)."""
        return self.mask & CHANGES == FAN_MODIFY


class Fanotify:
    """A notification group (``FAN_CLASS_NOTIF``: it never blocks the writer) reporting directory + name."""

    def __init__(self) -> None:
        flags = FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME
        self.fd = _libc.fanotify_init(flags | FAN_REPORT_PIDFD, os.O_RDONLY)
        self.pidfds = self.fd >= 0
        if self.fd < 0 and ctypes.get_errno() == 22:  # EINVAL: a kernel before 5.15, no pidfds
            self.fd = _libc.fanotify_init(flags, os.O_RDONLY)
        if self.fd < 0:
            raise _error("fanotify_init")
        self._directories: dict[bytes, str] = {}  # a directory's file handle -> its path

    def mark(self, directory: str) -> None:
        """Report ``CHANGES`` of the entries of ``directory`` (not of its subdirectories)."""
        self._directories[handle(directory)] = directory
        if _libc.fanotify_mark(self.fd, FAN_MARK_ADD, CHANGES | FAN_EVENT_ON_CHILD, AT_FDCWD,
                               os.fsencode(directory)) < 0:
            raise _error(f"fanotify_mark {directory}")

    def read(self) -> list[FileEvent]:
        """The events waiting (none when there are none: the group does not block)."""
        try:
            buffer = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        return list(self._parse(buffer))

    def _parse(self, buffer: bytes) -> Iterator[FileEvent]:
        offset = 0
        while offset + _METADATA.size <= len(buffer):
            length, _, _, metadata_length, mask, _, pid = _METADATA.unpack_from(buffer, offset)
            directory, name, pidfd = None, "", None
            at = offset + metadata_length
            while at + _INFO_HEADER.size <= offset + length:
                kind, _, info_length = _INFO_HEADER.unpack_from(buffer, at)
                if kind == INFO_DFID_NAME:  # header, fsid (8 bytes), file_handle, the name (NUL-ended)
                    size, handle_type = _HANDLE.unpack_from(buffer, at + 12)
                    start = at + 12 + _HANDLE.size
                    directory = self._directories.get(struct.pack("=i", handle_type) + buffer[start:start + size])
                    name = os.fsdecode(buffer[start + size:at + info_length].split(b"\0", 1)[0])
                elif kind == INFO_PIDFD:
                    pidfd = struct.unpack_from("=i", buffer, at + 4)[0]
                at += max(info_length, _INFO_HEADER.size)
            yield FileEvent(mask, pid, directory, name, pidfd)
            offset += max(length, _METADATA.size)

    def close(self) -> None:
        os.close(self.fd)


def handle(path: str) -> bytes:
    """The file handle of ``path`` as the kernel reports it in events: its type, then its bytes."""
    buffer = ctypes.create_string_buffer(_HANDLE.pack(MAX_HANDLE_SZ, 0) + bytes(MAX_HANDLE_SZ))
    mount_id = ctypes.c_int()
    if _libc.name_to_handle_at(AT_FDCWD, os.fsencode(path), buffer, ctypes.byref(mount_id), 0) < 0:
        # A filesystem with no file handles to open by (/proc/sys): the identifier fanotify reports instead.
        if ctypes.get_errno() != errno.EOPNOTSUPP or _libc.name_to_handle_at(
                AT_FDCWD, os.fsencode(path), buffer, ctypes.byref(mount_id), AT_HANDLE_FID) < 0:
            raise _error(f"name_to_handle_at {path}")
    size, handle_type = _HANDLE.unpack_from(buffer.raw)
    return struct.pack("=i", handle_type) + buffer.raw[_HANDLE.size:_HANDLE.size + size]


def _error(call: str) -> OSError:
    number = ctypes.get_errno()
    return OSError(number, f"{call}: {os.strerror(number)}")
