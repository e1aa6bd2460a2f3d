"""Rollout figures: what batching costs on top of the agents' own apply and report.

A simulated fleet of N real agents (one process, the real RabbitMQ) served by one ``nodeagentctl serve`` on
SQLite; one change goes out at once (``var set tag``), then the same kind of change through a rollout
(``var set tag --rollout --max-unavailable M``, no soak). Figures:

* at once: the command → every node converged;
* rollout: the command → completed (seen by polling ``rollout list``), and its time over its batch count,
  beside the agents' report interval (a batch cannot be judged before its nodes report: up to one interval,
  plus the serve loop's one-second tick).

Run as root with RabbitMQ up, nothing heavy beside it:
    .venv/bin/python benchmarks/rollout.py [--agents 30] [--max-unavailable 25%] [--runs 3]
Prints one line per run and a JSON line with every figure (medians over the runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
from nodeagent.testing.coordinators import TUNNEL_ROLE, Coordinators  # noqa: E402
from nodeagent.testing.simulator import SimulatedFleet  # noqa: E402
from nodeagent.testing.waiting import wait_until  # noqa: E402

REPORT_INTERVAL = 2


def wait_completed(group: Coordinators, number: int, timeout: float) -> int:
    """Until rollout ``number`` completes; returns its batch count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = next(r for r in json.loads(group.ctl("rollout", "list", "-f", "json").stdout) if r["ID"] == number)
        if row["State"] == "completed":
            return max(r["Batch"] for r in json.loads(group.ctl("rollout", "show", str(number), "-f", "json").stdout))
        if row["State"] != "running":
            raise RuntimeError(f"rollout {number} is {row['State']}: {row['Reason']}")
        time.sleep(0.1)
    raise TimeoutError(f"rollout {number} not completed within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=30)
    parser.add_argument("--max-unavailable", default="25%")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    at_once, rollouts, per_batch, counts = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="nodeagent-rollout-") as scratch:
        group = Coordinators(Path(scratch) / "fleet", None, 1, {"tunnel": TUNNEL_ROLE},
                             report_interval=REPORT_INTERVAL, down_time=30)
        group.start()
        try:
            with SimulatedFleet(group.directory / "agents", group.agent_base, args.agents) as fleet:
                hosts = fleet.hosts
                wait_until(lambda: set(hosts) <= set(group.nodes()), timeout=120)
                group.ctl("var", "set", "tag", "t0")
                group.ctl("node", "assign", "sim*", "tunnel")
                wait_until(lambda: group.converged(hosts, "t0"), timeout=120)
                for run in range(1, args.runs + 1):
                    started = time.monotonic()
                    group.ctl("var", "set", "tag", f"once{run}")
                    wait_until(lambda: group.converged(hosts, f"once{run}"), timeout=300, step=0.1)
                    at_once.append(time.monotonic() - started)
                    started = time.monotonic()
                    output = group.ctl("var", "set", "tag", f"rolled{run}", "--rollout", "--max-unavailable",
                                       args.max_unavailable).stdout
                    number = int(output.split("rollout ")[1].split()[0])
                    batches = wait_completed(group, number, timeout=600)
                    rollouts.append(time.monotonic() - started)
                    per_batch.append(rollouts[-1] / batches)
                    counts.append(batches)
                    print(f"run {run}: at once {at_once[-1]:.2f} s; rollout {rollouts[-1]:.2f} s in "
                          f"{batches} batches ({per_batch[-1]:.2f} s each)", flush=True)
        finally:
            group.stop()
    figures = {"agents": args.agents, "max_unavailable": args.max_unavailable, "report_interval_s": REPORT_INTERVAL,
               "at_once_s": round(statistics.median(at_once), 2), "rollout_s": round(statistics.median(rollouts), 2),
               "batches": statistics.median(counts), "batch_s": round(statistics.median(per_batch), 2),
               "load": round(os.getloadavg()[0], 1)}
    print(f"{args.agents} agents: at once {figures['at_once_s']} s; rollout {figures['rollout_s']} s in "
          f"{figures['batches']} batches, {figures['batch_s']} s per batch (report interval {REPORT_INTERVAL} s, "
          f"load {figures['load']})")
    print(json.dumps({"benchmark": "rollout", **figures}))


if __name__ == "__main__":
    main()
