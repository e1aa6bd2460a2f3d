"""File events that name the writer: one fanotify group for every watched file of a node (see ``fswatch``).

The same contract as ``fswatch.FileObserver`` (directories watched, each change of a watched
path handed on) plus who made it: fanotify reports the process, read from ``/proc`` at once in
this listener's thread (``writers.describe``). Writes by the agent's own process name nobody: they
are its own work, never drift. A command it runs (a package manager) is named, with the agent among
its parents: what that command writes is not the agent's to vouch for.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from nodeagent.kit import fanotify
from nodeagent.kit.context import Context
from nodeagent.node import processlog, writers
from nodeagent.node.fswatch import _existing_ancestor
from nodeagent.wire.messages import Writer

LOG = logging.getLogger(__name__)
REMEMBERED = 5.0  # seconds a writer's description serves its later events (a pid is not reused that soon)


def sysctl_path(key: str) -> str:
    """``net.ipv4.ip_forward`` -> ``/proc/sys/net/ipv4/ip_forward``."""
    return "/proc/sys/" + key.replace(".", "/")


class FanotifyObserver:
    """Calls ``on_change(path, by)`` when one of ``paths`` is written, replaced or removed; ``by`` is None
    for the agent's own writes. Raises ``OSError`` where fanotify cannot be had (no CAP_SYS_ADMIN)."""

    def __init__(self, paths: Iterable[Path], on_change: Callable[[str, Writer | None], None],
                 netns: str | None = None, short_lived: bool = True):
        """``netns``: the paths are seen from that network namespace (``/proc/sys/net`` is its own there);
        ``short_lived``: hold the process log, which names a writer gone before its event is read."""
        self.paths = {os.path.normpath(p) for p in paths}
        self.on_change = on_change
        self.group = fanotify.Fanotify()
        try:
            Context(netns=netns).in_netns(self._mark)
        except OSError:
            self.group.close()
            raise
        # pid -> (when, who): a process read while alive stays named by its later events, read after it exited.
        self._recent: dict[int, tuple[float, Writer]] = {}
        self.log = processlog.hold(writers.read_process) if short_lived else None
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="fanotify", daemon=True)
        self._thread.start()

    def _mark(self) -> None:
        for directory in sorted({_existing_ancestor(Path(p).parent) for p in self.paths}):
            self.group.mark(str(directory))

    def _run(self) -> None:
        own = os.getpid()
        while True:
            ready = select.select([self.group.fd, self._wake_r], [], [])[0]
            if self._wake_r in ready:
                return
            for event in self.group.read():
                try:
                    self._handle(event, own)
                except Exception:  # one odd event must not end the listener
                    LOG.exception("fanotify event %s", event)
                finally:
                    if event.pidfd is not None and event.pidfd >= 0:
                        os.close(event.pidfd)

    def _handle(self, event: fanotify.FileEvent, own: int) -> None:
        if event.overflow:  # events were lost: every path may have changed, by anyone
            for path in self.paths:
                self.on_change(path, None)
            return
        if event.directory is None:
            return
        path = os.path.normpath(os.path.join(event.directory, event.name))
        if path not in self.paths:
            return
        writer = None if event.pid == own else self._writer(event)  # read now: the writer may exit soon
        if event.in_progress and not path.startswith("/proc/sys/"):
            return  # a file is acted on once whole (close-write, moved-to), as inotify's watch does; a
            # sysctl is written in one write, and only that write is heard
        self.on_change(path, writer)

    def _writer(self, event: fanotify.FileEvent) -> Writer:
        now = time.monotonic()
        known = self._recent.get(event.pid)
        if known is not None and now - known[0] < REMEMBERED:
            return known[1]
        writer = writers.describe(event.pid, event.pidfd, self.log)
        self._recent = {pid: seen for pid, seen in self._recent.items() if now - seen[0] < REMEMBERED}
        self._recent[event.pid] = (now, writer)
        return writer

    def stop(self) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        for fd in (self._wake_r, self._wake_w, self.group.fd):
            os.close(fd)
        processlog.release(self.log)
