"""No-op reconcile of the network-node example, and the cost of observing network resources against the floor.

The floor is what any tool must spend to read the same objects: one bare pyroute2
link dump in the namespace (the vxlan, the bridge and its ports, the vxlan's device),
the ethtool ioctl reading eth2's features (on a socket opened in the namespace once),
and one OVSDB query of the same bridges and interfaces (on an open connection).
The resources are observed as the engine observes them: in one pass, sharing their
reads (``kit/passcache``). Also times the no-op reconcile of the whole network-node
example. Runs on a lab node (namespace + private Open vSwitch). Run as root:

    .venv/bin/python benchmarks/reconcile.py [RUNS]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.ethtool.ioctl import IoctlEthtool

from nodeagent.kit import ovsdb, passcache
from nodeagent.kit.context import Context
from nodeagent.node.engine import Engine
from nodeagent.testing.lab import LabNode
from nodeagent.document.model import load_document, parse_document
from nodeagent.document.registry import DriverRegistry
from timing import timed  # noqa: E402 (benchmarks/ is the script's directory)

EXAMPLES = Path(__file__).resolve().parent.parent / "etc/examples"
NETWORK_DRIVERS = ("ovs_bridge", "linux_bridge", "ethtool")


def p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    registry = DriverRegistry.from_entry_points()
    with tempfile.TemporaryDirectory() as scratch:
        node = LabNode(f"na-bench-{os.getpid()}", Path(scratch) / "ovs", ["eth1", "eth2"]).up()
        try:
            ctx = Context(root=Path(scratch) / "root", netns=node.name, ovsdb=node.ovsdb)
            engine = Engine(registry, ctx)
            network = load_document(EXAMPLES / "network-node.yaml", registry)
            compute = load_document(EXAMPLES / "compute-node.yaml", registry)
            assert not engine.reconcile(network).failed and not engine.reconcile(compute).failed
            resources = [r for doc in (network, compute) for r in doc.resources if r.driver in NETWORK_DRIVERS]
            only_network = parse_document({"node": "b", "resources": [r.to_dict() for r in resources]}, registry)

            def observe_all() -> None:
                with passcache.one_pass():
                    for resource in resources:
                        registry.get(resource.driver).observe(resource.spec, ctx)

            api = ovsdb.api(node.ovsdb)
            ipr = IPRoute(netns=node.name, flags=0)
            names = ["br-int", "br-ex", "eth2"]
            ethtool = ctx.in_netns(IoctlEthtool, "eth2")

            def link_dump() -> None:
                ipr.get_links()

            def features() -> None:
                ethtool.get_features()

            def ovsdb_query() -> None:
                api.db_list("Interface", names, columns=["name", "type", "options", "error", "ofport"],
                            if_exists=True).execute(check_error=True)

            def floor() -> None:
                link_dump()
                features()
                ovsdb_query()

            observe = timed(observe_all, runs)
            bare = timed(floor, runs)
            parts = {"link dump": timed(link_dump, runs), "ethtool features": timed(features, runs),
                     "OVSDB query": timed(ovsdb_query, runs)}
            ethtool.close()
            noop = timed(lambda: engine.reconcile(network), max(runs // 2, 20))
            noop_net = timed(lambda: engine.reconcile(only_network), max(runs // 2, 20))
            ipr.close()
        finally:
            ovsdb.close(node.ovsdb)
            node.down()
    rows = [("observe network resources, one pass", observe), ("floor: link dump + features + OVSDB", bare),
            *((f"  floor part: {name}", samples) for name, samples in parts.items()),
            ("no-op reconcile, network resources only", noop_net), ("no-op reconcile, network-node example", noop)]
    print(f"{len(resources)} network resources (ovs_bridge, linux_bridge, ethtool), {runs} runs")
    for label, samples in rows:
        print(f"  {label:42s} median {statistics.median(samples) * 1000:7.2f} ms   p90 {p90(samples) * 1000:7.2f} ms")
    ratio = statistics.median(observe) / statistics.median(bare)
    print(f"  observe / floor (medians): {ratio:.1f}x (goal ≤ 2x)")
    print(json.dumps({"benchmark": "reconcile", "resources": len(resources), "runs": runs,
                      "observe_median_ms": round(statistics.median(observe) * 1000, 3),
                      "floor_median_ms": round(statistics.median(bare) * 1000, 3), "ratio": round(ratio, 2),
                      "goal_ratio": 2,
                      **{f"floor_{name.replace(' ', '_').lower()}_median_ms": round(statistics.median(samples) * 1000, 3)
                         for name, samples in parts.items()},
                      "noop_network_median_ms": round(statistics.median(noop_net) * 1000, 3),
                      "noop_example_median_ms": round(statistics.median(noop) * 1000, 3)}))


if __name__ == "__main__":
    main()
