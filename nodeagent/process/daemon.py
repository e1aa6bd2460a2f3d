"""What both long-running processes need from their host: systemd notification and logging.

Several agents may share one process (a fleet simulator hosts hundreds), so every log
record carries the host it is about: the one a thread was bound to (``bind_host``), or
the one a ``HostLogger`` names, or the process's own (``setup_logging(host=...)``).
"""

from __future__ import annotations

import contextvars
import gc
import logging
import os
import select
import signal
import sys
import threading
from typing import Any, MutableMapping

# A context variable rather than a thread-local: asyncio.run() in a bound thread (the link watch) inherits it.
_HOST: contextvars.ContextVar[str | None] = contextvars.ContextVar("nodeagent_host", default=None)


def sd_notify(state: str) -> bool:
    """Tell systemd (READY=1, WATCHDOG=1, STATUS=...) when started by it; a no-op otherwise."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return False
    from systemd import daemon

    return daemon.notify(state)


class Signals:
    """Signals the main thread waits for, as values: ``wait()`` returns the next one's number.

    The handlers only write the number to a pipe, which ``wait()`` reads: setting a
    ``threading.Event`` inside a handler can deadlock the very thread it interrupted.
    Not ``signal.set_wakeup_fd``: a forked child (pyroute2's namespace helper) shares the
    pipe, and the SIGTERM its parent stops it with would read here as this process's own.
    Only the main thread may make one.
    """

    def __init__(self, *signums: int):
        self._pid = os.getpid()
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        os.set_blocking(self._read, False)
        self._previous = {signum: signal.signal(signum, self._handle) for signum in signums}
        self._open = threading.Lock()  # wake() against close(): never a write to a closed (or reused) descriptor
        self._closed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() == self._pid:  # not in a forked child
            try:
                os.write(self._write, bytes([signum]))
            except BlockingIOError:  # the pipe is full of signals not yet read: one more adds nothing
                pass

    def wait(self, timeout: float | None = None) -> int | None:
        """The next signal's number, or None after ``timeout`` seconds without one or when ``wake()`` was called."""
        readable, _, _ = select.select([self._read], [], [], timeout)
        if not readable:
            return None
        try:
            return os.read(self._read, 1)[0] or None
        except BlockingIOError:  # read by another waiter
            return None

    def wake(self) -> None:
        """End a ``wait()`` with no signal (from any thread, also after ``close()``): the waiter looks at what
        else it waits for."""
        with self._open:
            if self._closed:
                return
            try:
                os.write(self._write, b"\0")
            except BlockingIOError:
                pass

    def close(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        with self._open:
            self._closed = True
            os.close(self._read)
            os.close(self._write)


def without_eventlet() -> None:
    """Keep eventlet out of a process of threads (``nodeagent run``); call it before oslo.messaging is imported.

    Wherever eventlet is installed, oslo.messaging's stack imports it (oslo.service's default backend, futurist,
    ovs.poller), and dnspython with it: 18 MiB and 0.14 s of CPU for an agent that never runs a green thread.
    Marked absent, every one of them takes its path for plain threads; oslo.service is told to use its threading
    backend. A process that has eventlet already is left as it is.
    """
    if "eventlet" in sys.modules:
        return
    sys.modules["eventlet"] = None  # type: ignore[assignment]  # `import eventlet` raises ImportError
    from oslo_service import backend

    backend.init_backend(backend.BackendType.THREADING)


def before_exit() -> None:
    """Called last by a daemon that has stopped everything it started, to exit at once.

    The interpreter's final garbage collections over what a daemon has loaded (oslo.messaging,
    SQLAlchemy, the drivers: about 115,000 objects) took 1 to 1.5 s of a 2 s stop. Frozen
    objects are left out of them (gc.freeze); nothing waits for a finalizer: every connection,
    thread and file was closed explicitly, and logging is flushed by its own exit handler.
    """
    gc.freeze()


def bind_host(host: str) -> None:
    """Name ``host`` in every record the calling thread logs from now on (call it first in a thread)."""
    _HOST.set(host)


class HostLogger(logging.LoggerAdapter):
    """A logger whose records name ``host`` whatever thread logs them (RPC threads, watch threads)."""

    def __init__(self, logger: logging.Logger, host: str):
        super().__init__(logger, {"host": host})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**self.extra, **kwargs.get("extra", {})}
        return msg, kwargs


class HostFilter(logging.Filter):
    """Gives each record a ``host``: the logger's, else the thread's, else the process's default."""

    def __init__(self, default: str = "-"):
        super().__init__()
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "host", None):
            record.host = _HOST.get() or self.default
        return True


def setup_logging(name: str, debug: bool = False, host: str | None = None) -> None:
    """The journal only under systemd (there it is read); stderr otherwise. ``host``: what records not
    bound to an agent's host name (the process's own host, or '-' in a process of many agents).

    journal.send() drops messages silently where no journald runs, so stderr is
    the default and the journal is chosen only when systemd started us.
    """
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"):
        from systemd.journal import JournalHandler

        handler = JournalHandler(SYSLOG_IDENTIFIER=name)
        handler.setFormatter(logging.Formatter("%(host)s %(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"%(asctime)s {name} %(host)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(HostFilter(host or "-"))
    root.addHandler(handler)
    for noisy in ("oslo_messaging", "ovsdbapp", "stevedore", "amqp", "kombu", "oslo.messaging"):
        logging.getLogger(noisy).setLevel(logging.INFO if debug else logging.WARNING)
