"""What one idle agent holds and spends while it watches the drift tests' document: memory, CPU, wakeups,
threads, sockets, inotify instances.

One agent on a lab node (with its coordinator) enforces tests/drift_kinds.DOCUMENT (files, a
sysctl, a Linux bridge, an OVS bridge, ethtool features); once converged, its process is
counted with psutil and /proc, then watched for IDLE seconds with nothing drifting: CPU (user +
system), and wakeups per second, each thread's voluntary context switches (a thread that sleeps
on a timer or a socket wakes once per switch), the busiest threads named; then stopped (SIGTERM),
timed to its exit. The agent is the one of
the Python running this script (``/other/venv/bin/python benchmarks/agent_footprint.py`` counts
another tree's agent).

Run as root with RabbitMQ up:  .venv/bin/python benchmarks/agent_footprint.py [--idle 60]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import psutil  # noqa: E402
import yaml  # noqa: E402

from nodeagent.testing.lab import Fleet  # noqa: E402
from nodeagent.testing.waiting import wait_until  # noqa: E402
from tests.drift_kinds import DOCUMENT  # noqa: E402


def count(pid: int) -> dict:
    process = psutil.Process(pid)
    kinds = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kinds["socket" if target.startswith("socket:") else target if target.startswith("anon_inode:") else "file"] += 1
    listed = process.net_connections(kind="all")  # inet and unix; the remaining sockets are netlink
    return {"threads": process.num_threads(), "sockets": kinds["socket"],
            "netlink_and_other_sockets": kinds["socket"] - len(listed),
            "inotify": kinds["anon_inode:inotify"]}


def switches(pid: int) -> dict[str, int]:
    """Voluntary context switches so far, per thread (name:tid)."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            status = open(f"/proc/{pid}/task/{tid}/status").read()
        except OSError:
            continue
        found[f"{name}:{tid}"] = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return found


def idle(pid: int, seconds: float) -> dict:
    """CPU and wakeups over ``seconds`` of an agent with nothing to do."""
    process = psutil.Process(pid)
    cpu_before, before, start = sum(process.cpu_times()[:2]), switches(pid), time.monotonic()
    time.sleep(seconds)
    cpu_after, after, elapsed = sum(process.cpu_times()[:2]), switches(pid), time.monotonic() - start
    per_thread = {name: (after[name] - before.get(name, 0)) / elapsed for name in after}
    busiest = sorted(per_thread.values(), reverse=True)[:6]  # threads of Python share one name: by rate
    memory = process.memory_full_info()
    return {"idle_seconds": round(elapsed, 1), "cpu_percent": round(100 * (cpu_after - cpu_before) / elapsed, 3),
            "wakeups_per_s": round(sum(per_thread.values()), 2),
            "busiest_threads": [round(rate, 2) for rate in busiest],
            "rss_mib": round(memory.rss / 2**20, 1), "uss_mib": round(memory.uss / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=60, help="seconds to watch the idle agent")
    parser.add_argument("--report-interval", type=int, default=10,
                        help="seconds between heartbeats (10, the default: each costs the agent about 4 wakeups)")
    args = parser.parse_args()
    fleet = Fleet(Path(tempfile.mkdtemp(prefix="nodeagent-footprint.")), report_interval=args.report_interval,
                  auto_accept=True)
    try:
        fleet.add_node("fp1", ["eth1", "eth2"])
        fleet.start("coordinator")
        fleet.start("fp1")
        (fleet.directory / "state.yaml").write_text(yaml.safe_dump(DOCUMENT))
        # the first report may leave before the coordinator listens: the next one comes an interval later
        wait_until(lambda: "fp1" in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout,
                   60 + args.report_interval)
        fleet.ctl("node", "set-state", "fp1", str(fleet.directory / "state.yaml"))
        status = fleet.directory / "fp1/state/status.json"
        wait_until(lambda: status.exists() and json.loads(status.read_text())["generation"] == 1, 60)
        time.sleep(3)  # the watches started after the apply
        figures = count(fleet.processes["fp1"].pid)
        figures |= idle(fleet.processes["fp1"].pid, args.idle)
        start = time.monotonic()  # a stop wakes the listeners that sleep on the broker's sockets
        fleet.stop("fp1")
        figures["stop_seconds"] = round(time.monotonic() - start, 2)
    finally:
        fleet.close()
    load = os.getloadavg()
    print(f"agent ({sys.executable}): {figures['threads']} threads, {figures['sockets']} sockets "
          f"({figures['netlink_and_other_sockets']} netlink), {figures['inotify']} inotify")
    print(f"  idle over {figures['idle_seconds']} s: RSS {figures['rss_mib']} MiB (goal ≤ 40; unshared "
          f"{figures['uss_mib']}), CPU {figures['cpu_percent']} % (goal ≤ 0.1), "
          f"{figures['wakeups_per_s']} wakeups/s (goal ≤ 1; load average {load[0]:.2f})")
    print("  the busiest threads' wakeups/s: " + ", ".join(map(str, figures["busiest_threads"])))
    print(f"  SIGTERM to exit: {figures['stop_seconds']} s (goal: about a second at most)")
    print(json.dumps({"benchmark": "agent_footprint", "python": sys.executable, **figures,
                      "report_interval": args.report_interval, "load_average": round(load[0], 2)}))


if __name__ == "__main__":
    main()
