"""Drift correction latency with the broker there and during a broker outage, and delivery afterwards.

One agent on a lab node reaches RabbitMQ through a relay of its own (tests/relay.py); the
outage cuts the relay (every connection closed, new ones refused), never the shared broker.
Each trial edits an ini key and times edit → put back (polling the file). After the outage:
seconds until every drift event is at the coordinator, and how many arrived (each exactly once).

Run as root with RabbitMQ up:  .venv/bin/python benchmarks/outage.py [--outage 60] [--interval 2]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import yaml  # noqa: E402

from nodeagent.testing.lab import Fleet  # noqa: E402
from nodeagent.testing.waiting import wait_until  # noqa: E402
from tests.relay import Relay  # noqa: E402

DOCUMENT = {"resources": [{"id": "neutron-conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
                           "settings": {"DEFAULT": {"core_plugin": "ml2"}}}]}




def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outage", type=float, default=60, help="seconds the broker is cut")
    parser.add_argument("--interval", type=float, default=2, help="seconds between drifts")
    args = parser.parse_args()
    relay = Relay()
    fleet = Fleet(Path(tempfile.mkdtemp(prefix="nodeagent-outage-bench.")), transport_url=relay.url(),
                  report_interval=1, auto_accept=True, agent_options={"drift_contested_count": 1000000})
    conf = fleet.directory / "o1/root/etc/neutron/neutron.conf"
    number = 0

    def trial() -> float:
        nonlocal number
        number += 1
        start = time.monotonic()
        conf.write_text(conf.read_text().replace("core_plugin = ml2", f"core_plugin = drift{number}"))
        wait_until(lambda: "core_plugin = ml2" in conf.read_text(), 120, "the drift corrected", 0.002)
        return time.monotonic() - start

    try:
        fleet.add_node("o1", [])
        fleet.start("coordinator")
        fleet.start("o1")
        wait_until(lambda: "o1" in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout, 60, "the node", 0.2)
        (fleet.directory / "state.yaml").write_text(yaml.safe_dump(DOCUMENT))
        fleet.ctl("node", "set-state", "o1", str(fleet.directory / "state.yaml"))
        wait_until(lambda: conf.exists() and "core_plugin = ml2" in conf.read_text(), 60, "the document applied", 0.002)
        time.sleep(2)
        up = []
        for _ in range(10):
            up.append(trial())
            time.sleep(args.interval)
        relay.cut()
        down = []
        ends = time.monotonic() + args.outage
        while time.monotonic() < ends:
            down.append(trial())
            time.sleep(args.interval)
        relay.restore()
        restored = time.monotonic()

        def delivered():
            return len(json.loads(fleet.ctl("drift", "list", "-f", "json", "--limit", "100000").stdout)) >= number
        wait_until(delivered, 300, "every event delivered", 0.5)
        catch_up = time.monotonic() - restored
        time.sleep(3)
        records = json.loads(fleet.ctl("drift", "list", "-f", "json", "--limit", "100000").stdout)
    finally:
        relay.close()
        fleet.close()
    found = sorted(r["Changes"][0] for r in records)
    duplicates = len(found) - len(set(found))
    print(f"drift correction with the broker: median {statistics.median(up) * 1000:.0f} ms, "
          f"max {max(up) * 1000:.0f} ms ({len(up)} drifts)")
    print(f"drift correction during a {args.outage:.0f} s outage: median {statistics.median(down) * 1000:.0f} ms, "
          f"p99 {percentile(down, 0.99) * 1000:.0f} ms, max {max(down) * 1000:.0f} ms ({len(down)} drifts)")
    print(f"after the outage: {len(records)} of {number} drift events at the coordinator in {catch_up:.1f} s, "
          f"{duplicates} duplicates")
    print(json.dumps({"benchmark": "outage", "outage_s": args.outage, "up_median_ms": statistics.median(up) * 1000,
                      "down_median_ms": statistics.median(down) * 1000, "down_max_ms": max(down) * 1000,
                      "drifts": number, "delivered": len(records), "duplicates": duplicates,
                      "catch_up_s": catch_up}))


if __name__ == "__main__":
    main()
