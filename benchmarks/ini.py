"""The ini driver against the number of keys: a first apply (every key new), a no-op plan, and a change of
every value, on a scratch root. Linear is the goal: 10x the keys should cost about 10x the time (it cost
about 100x: 10,000 keys took 13.4 s to apply, issue #23).

    .venv/bin/python benchmarks/ini.py [KEYS ...]     # default: 1000 2000 5000 10000
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from nodeagent.document.model import parse_document
from nodeagent.document.registry import DriverRegistry
from nodeagent.kit.context import Context
from nodeagent.node.engine import Engine
from timing import timed  # noqa: E402 (benchmarks/ is the script's directory)


def document(keys: int, value: str) -> dict:
    """One ini resource: ``keys`` options over ten sections, half of them beside a commented sample line."""
    sections = {f"section{s}": {f"key{s}_{k}": f"{value}{k}" for k in range(s, keys, 10)} for s in range(10)}
    return {"node": "bench", "generation": 1, "resources": [
        {"id": "conf", "driver": "ini", "path": "/etc/neutron/big.conf", "settings": sections}]}


def sample(keys: int) -> str:
    """A file like oslo.config's samples: each section with commented defaults for half its keys."""
    lines = []
    for s in range(10):
        lines += [f"[section{s}]\n"] + [f"#key{s}_{k} = <None>\n" for k in range(s, keys, 20)]
    return "".join(lines)


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [1000, 2000, 5000, 10000]
    registry = DriverRegistry.from_entry_points()
    figures = {}
    for keys in sizes:
        scratch = tempfile.TemporaryDirectory(prefix="nodeagent-bench-ini.")
        root = Path(scratch.name)
        conf = root / "etc/neutron/big.conf"
        conf.parent.mkdir(parents=True)
        engine = Engine(registry, Context(root=root, backup_dir=None))
        first, changed = (parse_document(document(keys, v), registry) for v in ("a", "b"))

        def apply_first() -> None:
            conf.write_text(sample(keys))
            engine.reconcile(first)
        apply_seconds = min(timed(apply_first, 3))
        plan_seconds = min(timed(lambda: engine.reconcile(first, dry_run=True), 3))
        change_seconds = min(timed(lambda: (engine.reconcile(changed), engine.reconcile(first)), 3)) / 2
        figures[keys] = {"apply_s": round(apply_seconds, 4), "noop_plan_s": round(plan_seconds, 4),
                         "change_all_s": round(change_seconds, 4)}
        print(f"{keys:6d} keys: first apply {apply_seconds * 1000:8.1f} ms, no-op plan {plan_seconds * 1000:7.1f} ms,"
              f" change every value {change_seconds * 1000:8.1f} ms")
        scratch.cleanup()
    smallest, largest = min(sizes), max(sizes)
    growth = figures[largest]["apply_s"] / max(figures[smallest]["apply_s"], 1e-9)
    print(f"first apply: {largest / smallest:.0f}x the keys took {growth:.1f}x the time")
    print(json.dumps({"benchmark": "ini", "sizes": figures, "apply_growth": round(growth, 1),
                      "keys_growth": round(largest / smallest, 1)}))


if __name__ == "__main__":
    main()
