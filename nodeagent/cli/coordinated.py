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


def _converge(app: Any, change: Callable[[], list[tuple[str, int]]]) -> None:
    """Make an operator's change and print each node's new generation; a push that failed after the
    change was stored is an error naming the nodes (they fetch their document at their next heartbeat)."""
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


def _quiet_broker_retries(app: Any) -> None:
    """oslo.messaging logs each failed connection attempt; PushFailed's one line says it (-v shows them)."""
    if app.options.verbose_level <= 1:
        logging.getLogger("oslo.messaging").setLevel(logging.CRITICAL)


def _print_stored(app: Any, failed: PushFailed) -> None:
    for host, generation in failed.stored:
        app.stdout.write(f"{host}: generation {generation} "
                         f"{'stored, not pushed' if host in failed.failed else 'pushed'}\n")
