"""The last seconds of the node's process history, so a writer gone before its event was read is still named.

Fed by the kernel's exec events (``kit.procevents``): at each exec the new program's command line,
executable, parent, unit and login user are read from ``/proc`` (the start of a process's life, not
its end, where fanotify's event lands). Only execs are asked for (the kernel filters): forks and
exits, threads' included, would wake the log many times more often for little (a fork's command is
its parent's). One log per agent process, shared by its file watchers, held while one of them is.

A program that lives less than the log takes to be woken (``sh -c 'echo >> f'`` on a loaded machine)
is gone before its command line is read: it is then named by pid only.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time

from nodeagent.kit import procevents

LOG = logging.getLogger(__name__)
KEPT = 30.0  # seconds a record is kept after its exec, and after that while its process lives
PRUNE_EVERY = 5.0


class ProcessLog:
    """``lookup(pid)``: what was seen of a process (command, executable, unit, user, parent), or None."""

    def __init__(self, read_process) -> None:
        """``read_process(pid)``: a dict of what ``/proc/PID`` says, or None (``writers._read``)."""
        self.read_process = read_process
        self.events = procevents.ProcessEvents(only=procevents.EXEC)
        self.seen: dict[int, dict] = {}  # pid -> what /proc said of it at its exec, and when
        self._pruned = time.monotonic()
        self.lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="process-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            ready = select.select([self.events, self._wake_r], [], [])[0]
            if self._wake_r in ready:
                return
            self.drain()

    def drain(self) -> None:
        """Take in every event waiting (the watcher calls it too, before looking a gone writer up)."""
        with self.lock:
            now = time.monotonic()
            for event in self.events.read():
                if event.what == procevents.EXEC:
                    process = self.read_process(event.pid)
                    if process is not None:
                        self.seen[event.pid] = {**process, "at": now}
            if now - self._pruned > PRUNE_EVERY:  # what is old and gone; a pid reused is overwritten at its exec
                self._pruned = now
                self.seen = {pid: r for pid, r in self.seen.items()
                             if now - r["at"] < KEPT or os.path.exists(f"/proc/{pid}")}

    def lookup(self, pid: int) -> dict | None:
        self.drain()
        with self.lock:
            record = self.seen.get(pid)
            return dict(record) if record is not None else None

    def close(self) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        self.events.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


_shared: ProcessLog | None = None
_holders = 0
_shared_lock = threading.Lock()


def hold(read_process) -> ProcessLog | None:
    """The agent process's log (started by its first holder), or None where process events cannot be had."""
    global _shared, _holders
    with _shared_lock:
        if _shared is None:
            try:
                _shared = ProcessLog(read_process)
            except OSError as exc:
                LOG.info("no process events (%s): a writer gone before its event is read is named by pid only",
                         exc.strerror or exc)
                return None
        _holders += 1
        return _shared


def release(log: ProcessLog | None) -> None:
    global _shared, _holders
    if log is None:
        return
    with _shared_lock:
        _holders -= 1
        if _holders == 0 and _shared is not None:
            _shared.close()
            _shared = None
