"""Reads the resources of one reconcile pass share: one link dump for every link resource, not one each.

Reading a namespace's links is one netlink dump whatever a resource wants of it, and decoding the dump is
most of what observing a link costs; a pass over five network resources read it five times. The engine
opens a pass around a reconcile (``one_pass()``) and calls ``forget()`` after anything that may have
changed the node (an apply, a notify): in between, ``once(key, read)`` reads once and hands the same
value to every resource that asks. A change made by someone else during the pass is no different from one
made just after it: its event (netlink, OVSDB) brings the resource back for another look.

Outside a pass (a driver called alone, a benchmark of one resource) every read is made afresh. Passes are
per thread: the reads are made in, and for, the thread that reconciles.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Hashable, Iterator, TypeVar

T = TypeVar("T")
_local = threading.local()


@contextlib.contextmanager
def one_pass() -> Iterator[None]:
    """Share reads until the block ends (a pass inside a pass is the outer one)."""
    if getattr(_local, "reads", None) is not None:
        yield
        return
    _local.reads = {}
    try:
        yield
    finally:
        _local.reads = None


def forget() -> None:
    """The node may have changed: the next read of everything is made afresh."""
    reads = getattr(_local, "reads", None)
    if reads:
        reads.clear()


def once(key: Hashable, read: Callable[[], T]) -> T:
    """``read()``, made once per pass for ``key`` (every time outside a pass)."""
    reads = getattr(_local, "reads", None)
    if reads is None:
        return read()
    if key not in reads:
        reads[key] = read()
    return reads[key]
