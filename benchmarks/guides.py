"""Time from `node assign` to every agent alive in the real Neutron, per guide; the lab's setup time and memory.

    .venv/bin/python benchmarks/guides.py [--runs N] [--guide three-node|two-node-provider|two-node-self-service]

Each run builds a lab cloud and its nodes from nothing (setup), deploys the guide from roles (the
controller first: database, Keystone, schema, server; then the other nodes), and waits until
Neutron lists every agent the roles run alive. Memory is the PSS of every process of the lab
(services, agents, coordinator, lab cloud) once all are alive. Prints a table of medians and one
JSON line per guide.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import psutil

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
from nodeagent.testing import labguide  # noqa: E402
from nodeagent.testing.labguide import Deployment  # noqa: E402

GUIDES = {"three-node": labguide.three_node, "two-node-provider": lambda: labguide.two_node("provider"),
          "two-node-self-service": lambda: labguide.two_node("self-service")}


def lab_pss(deployment: Deployment) -> float:
    """MiB of PSS of the lab's processes: node systemds and what they run, agents, coordinator, cloud."""
    roots = [s.pid for s in deployment.fleet.systemds.values()]
    roots += [p.pid for p in deployment.fleet.processes.values()] + [p.pid for p in deployment.cloud.processes.values()]
    seen, total = set(), 0
    for pid in roots:
        try:
            parent = psutil.Process(pid)
            for process in [parent, *parent.children(recursive=True)]:
                if process.pid not in seen:
                    seen.add(process.pid)
                    total += process.memory_full_info().pss
        except psutil.Error:
            continue
    return total / 2**20


def one_run(name: str) -> dict[str, float]:
    deployment = Deployment(Path(tempfile.mkdtemp(prefix=f"nodeagent-bench-{name}.")), GUIDES[name]())
    try:
        started = time.monotonic()
        deployment.up()
        setup = time.monotonic() - started
        assigned = time.monotonic()
        deployment.deploy()
        checks = deployment.wait_alive(900)
        if not all(c.ok for c in checks):
            raise SystemExit(f"{name}: not alive: {[c for c in checks if not c.ok]}")
        return {"setup_s": setup, "assign_to_alive_s": time.monotonic() - assigned, "pss_mib": lab_pss(deployment)}
    finally:
        deployment.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--guide", choices=sorted(GUIDES), action="append")
    args = parser.parse_args()
    print(f"{'guide':<24} {'runs':>4} {'setup s':>9} {'assign->alive s':>16} {'lab PSS MiB':>12}   (medians)")
    for name in args.guide or sorted(GUIDES):
        runs = [one_run(name) for _ in range(args.runs)]
        medians = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        print(f"{name:<24} {len(runs):>4} {medians['setup_s']:>9.1f} {medians['assign_to_alive_s']:>16.1f} "
              f"{medians['pss_mib']:>12.0f}", flush=True)
        print(json.dumps({"benchmark": "guides", "guide": name, "runs": len(runs),
                          **{f"median_{k}": round(v, 2) for k, v in medians.items()},
                          "samples": runs}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
