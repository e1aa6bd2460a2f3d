"""What the benchmarks share: time a function over several runs (each prints medians of these samples)."""

from __future__ import annotations

import time
from typing import Callable


def timed(function: Callable[[], object], runs: int) -> list[float]:
    """Seconds per run of ``function``, one sample per run."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples
