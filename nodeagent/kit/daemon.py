"""What both long-running processes need from their host: systemd notification and logging."""

from __future__ import annotations

import logging
import os


def sd_notify(state: str) -> bool:
    """Tell systemd (READY=1, WATCHDOG=1, STATUS=...) when started by it; a no-op otherwise."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return False
    from systemd import daemon

    return daemon.notify(state)


def setup_logging(name: str, debug: bool = False) -> None:
    """The journal only under systemd (there it is read); stderr otherwise.

    journal.send() drops messages silently where no journald runs, so stderr is
    the default and the journal is chosen only when systemd started us.
    """
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    if os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"):
        from systemd.journal import JournalHandler

        root.addHandler(JournalHandler(SYSLOG_IDENTIFIER=name))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    for noisy in ("oslo_messaging", "ovsdbapp", "stevedore", "amqp", "kombu", "oslo.messaging"):
        logging.getLogger(noisy).setLevel(logging.INFO if debug else logging.WARNING)
