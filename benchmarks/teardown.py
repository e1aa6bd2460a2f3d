"""Teardown: SIGTERM → exit of an agent and of a coordinator that are talking to each other.

A lab fleet (coordinator + one agent on a lab node, real RabbitMQ, reached through a
relay); once the agent has heartbeated, both are stopped as ``Fleet.close()`` stops them
(agent first) and each one's SIGTERM → exit is timed. Repeated TRIALS times on fresh
processes. --broker-away cuts the relay first (a stop during a broker outage).

Run as root with RabbitMQ up:  .venv/bin/python benchmarks/teardown.py [--trials 5] [--broker-away]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
from nodeagent.testing.lab import Fleet  # noqa: E402
from nodeagent.testing.waiting import wait_until  # noqa: E402
from tests.relay import Relay  # noqa: E402


def stop_time(fleet: Fleet, name: str) -> float:
    process = fleet.processes[name]  # left in the fleet until it has exited: close() kills what did not
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    fleet.processes.pop(name)
    return time.monotonic() - started


def trial(directory: Path, broker_away: bool) -> dict[str, float]:
    relay = Relay()
    fleet = Fleet(directory, transport_url=relay.url(), report_interval=1, auto_accept=True)
    try:
        fleet.add_node("node-a", [])
        fleet.start("coordinator")
        fleet.start("node-a")

        def heartbeat():
            """the agent heartbeated"""
            return '"node-a"' in fleet.ctl("node", "list", "-f", "json").stdout
        wait_until(heartbeat, 30)
        time.sleep(1.5)  # a few heartbeats: the RPC server and the reply queue are in use
        if broker_away:
            relay.cut()
            time.sleep(3)  # both have lost their connections and are trying again
        return {"agent": stop_time(fleet, "node-a"), "coordinator": stop_time(fleet, "coordinator")}
    finally:
        relay.close()
        fleet.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--broker-away", action="store_true", help="cut the broker before the stops")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"agent": [], "coordinator": []}
    for number in range(args.trials):
        with tempfile.TemporaryDirectory(prefix="nodeagent-teardown-") as directory:
            result = trial(Path(directory), args.broker_away)
        for name, seconds in result.items():
            times[name].append(seconds)
        print(f"trial {number + 1}: agent {result['agent']:.2f} s, coordinator {result['coordinator']:.2f} s")
    summary = {name: {"median_s": round(statistics.median(values), 3), "max_s": round(max(values), 3)}
               for name, values in times.items()}
    for name, figures in summary.items():
        print(f"{name}: SIGTERM → exit median {figures['median_s']} s, max {figures['max_s']} s")
    print(json.dumps({"benchmark": "teardown", "broker_away": args.broker_away, "trials": args.trials, **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
