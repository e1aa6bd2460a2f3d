"""The one way tests, the lab and the benchmarks wait for something: poll a check until it holds.

Hand-written rather than taken from a retry library (tenacity is in the OpenStack venvs, not in ours): the
whole need is ten lines, and the failure message is what matters, naming what was awaited and the last
value the check gave, so a red test says what did not happen.
"""

from __future__ import annotations

import inspect
import time
from typing import Callable, TypeVar

T = TypeVar("T")


class NotReached(AssertionError, TimeoutError):
    """A wait ran out: a failed assertion for pytest, a TimeoutError for the lab and the benchmarks."""


def wait_until(check: Callable[[], T], timeout: float = 20.0, what: str | None = None, step: float = 0.2) -> T:
    """``check()``'s first true value, polled every ``step`` s; NotReached after ``timeout`` s, naming
    ``what`` (else the check's docstring or source) and the last value the check returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise NotReached(f"{what or describe(check)}: not within {timeout:g} s (last value: {value!r:.300})")
        time.sleep(step)


def describe(check: Callable) -> str:
    """A check as a reader knows it: its docstring, else its source line (a lambda's), else its name."""
    if check.__doc__:
        return check.__doc__.strip().splitlines()[0]
    try:
        return " ".join(inspect.getsource(check).split())[:200]
    except (OSError, TypeError):
        return getattr(check, "__qualname__", repr(check))
