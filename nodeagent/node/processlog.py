"""The last seconds of the node's process history, so a writer gone before its event was read is still named.

Fed by the kernel's process events (``kit.procevents``): at each exec the new program's command
line, executable, unit and login user are read from ``/proc`` (the start of a process's life, not
its end, where fanotify's event lands); at each fork and exit its parent is noted (carried by the
event itself). One log per agent process, shared by its file watchers, held while one of them is.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time

from nodeagent.kit import procevents

LOG = logging.getLogger(__name__)
KEPT_AFTER_EXIT = 10.0  # seconds an exited process is remembered
KEPT_AT_MOST = 600.0  # seconds any record is kept (an exit event lost to a full socket buffer)


class ProcessLog:
    """``lookup(pid)``: what was seen of a process (command, executable, unit, user, parent), or None."""

    def __init__(self, read_process) -> None:
        """``read_process(pid)``: a dict of what ``/proc/PID`` says, or None (``writers._read``)."""
        self.read_process = read_process
        self.events = procevents.ProcessEvents()
        self.seen: dict[int, dict] = {}  # pid -> {"at", "parent", "exited", and what exec read}
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
                record = self.seen.setdefault(event.pid, {"at": now, "parent": 0, "exited": None})
                if event.what == procevents.EXEC:
                    record.update(self.read_process(event.pid) or {}, at=now)
                elif event.parent:
                    record["parent"] = event.parent
                if event.what == procevents.EXIT:
                    record["exited"] = now
            if len(self.seen) > 256:
                self.seen = {pid: r for pid, r in self.seen.items() if now - r["at"] < KEPT_AT_MOST
                             and (r["exited"] is None or now - r["exited"] < KEPT_AFTER_EXIT)}

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
