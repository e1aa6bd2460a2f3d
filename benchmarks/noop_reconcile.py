"""No-op reconcile of the network-node example: how long a pass over an in-sync node takes.

Applies the example once under a scratch root and a namespace of its own, then times
RUNS reconciles that find nothing to do. Prints median and p90, then one JSON line.
Run as root:  .venv/bin/python benchmarks/noop_reconcile.py [RUNS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nodeagent.context import Context
from nodeagent.engine import Engine
from nodeagent.model import load_document
from nodeagent.registry import DriverRegistry

EXAMPLE = Path(__file__).resolve().parent.parent / "etc/examples/network-node.yaml"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    netns = f"na-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        with tempfile.TemporaryDirectory() as root:
            registry = DriverRegistry.from_entry_points()
            document = load_document(EXAMPLE, registry)
            engine = Engine(registry, Context(root=Path(root), netns=netns))
            first = engine.reconcile(document)
            assert not first.failed, first.to_dict()
            timings = []
            for _ in range(runs):
                start = time.perf_counter()
                result = engine.reconcile(document)
                timings.append(time.perf_counter() - start)
                assert result.counts()["in_sync"] == len(document.resources)
            per_resource = {}
            for item in result.resources:
                per_resource[item.driver] = per_resource.get(item.driver, 0.0) + item.duration
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    median, p90 = statistics.median(timings), percentile(timings, 0.9)
    print(f"no-op reconcile of {EXAMPLE.name}: {len(document.resources)} resources, {runs} runs")
    print(f"  median {median * 1000:.2f} ms   p90 {p90 * 1000:.2f} ms   min {min(timings) * 1000:.2f} ms")
    print("  last run by driver: " + ", ".join(f"{d} {t * 1000:.2f} ms" for d, t in sorted(per_resource.items())))
    print(json.dumps({"benchmark": "noop_reconcile", "resources": len(document.resources), "runs": runs,
                      "median_ms": round(median * 1000, 3), "p90_ms": round(p90 * 1000, 3),
                      "min_ms": round(min(timings) * 1000, 3)}))


if __name__ == "__main__":
    main()
