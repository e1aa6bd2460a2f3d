"""What every ``nodeagentctl`` command that works on the coordinator shares: the coordinator made from the
configuration, names as the coordinator folds them, times as tables show them, and a change's outcome printed."""

from __future__ import annotations

import datetime
import logging
from typing import Any, Callable

from nodeagent.fleet.errors import PushFailed


def _coordinator(app: Any):
    from nodeagent.fleet.coordinator import Coordinator

    return Coordinator(app.conf())


def host_name(text: str) -> str:
    """A node named on the command line, folded as the coordinator folds the names agents send (DNS ignores
    case): 'node accept RELNODE1' finds relnode1."""
    return text.lower()


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _converge(app: Any, change: Callable[[], list[tuple[str, int]]], desired: Any = None) -> None:
    """Make an operator's change and print each node's new generation, then how long it took (``desired``: the
    coordinator's ``DesiredState``); a push that failed after the change was stored is an error naming the
    nodes (they fetch their document at their next heartbeat)."""
    _quiet_broker_retries(app)
    try:
        pushed = change()
    except PushFailed as exc:
        _print_stored(app, exc)
        raise
    for host, generation in pushed:
        app.stdout.write(f"{host}: generation {generation} pushed\n")
    if not pushed:
        app.stdout.write("no node's document changed\n")
    timing = getattr(desired, "last_timing", None)
    if pushed and timing:
        app.stdout.write(f"{len(pushed)} documents: rendered and checked in {timing['plan_s']:.1f} s, stored in "
                         f"{timing['store_s']:.1f} s, sent to their nodes in {timing['push_s']:.1f} s"
                         + (f" (waited {timing['lock_wait_s']:.1f} s for another coordinator's change)"
                            if timing["lock_wait_s"] >= 1 else "") + "\n")


def _quiet_broker_retries(app: Any) -> None:
    """oslo.messaging logs each failed connection attempt; PushFailed's one line says it (-v shows them)."""
    if app.options.verbose_level <= 1:
        logging.getLogger("oslo.messaging").setLevel(logging.CRITICAL)


def _print_stored(app: Any, failed: PushFailed) -> None:
    for host, generation in failed.stored:
        app.stdout.write(f"{host}: generation {generation} "
                         f"{'stored, not pushed' if host in failed.failed else 'pushed'}\n")
