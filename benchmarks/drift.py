"""Drift latency per kind: out-of-band change → detected by the agent → corrected, and the idle cost.

One agent on a lab node (with its coordinator) enforces the drift tests' document;
each kind of change is made TRIALS times. Detection and correction times are the
agent's own records (the drift event's seen_at and fixed_at), measured from just
before the change. Then the agent's CPU over IDLE seconds with nothing drifting, its memory
and threads, and how many programs the machine started meanwhile (with fanotify the agent reads
each new program's command line: its idle cost grows with the machine's exec rate).

``--file-watch fanotify|inotify`` compares the two ways files are heard (fanotify names writers);
``--no-short-lived`` measures fanotify without the process log (``name_short_lived_writers``).

Run as root with RabbitMQ up:  .venv/bin/python benchmarks/drift.py [--trials 50] [--idle 60] [--file-watch inotify]
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
import psutil  # noqa: E402
import yaml  # noqa: E402

from nodeagent.kit import procevents  # noqa: E402
from nodeagent.testing.lab import Fleet  # noqa: E402
from nodeagent.testing.waiting import wait_until  # noqa: E402
from tests.drift_kinds import DOCUMENT, KINDS  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def wait(check, timeout: float = 10):
    """The benchmark polls every 2 ms: the figures are latencies."""
    return wait_until(check, timeout, step=0.002)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--idle", type=float, default=60)
    parser.add_argument("--kinds", nargs="*", default=list(KINDS), help="only these kinds")
    parser.add_argument("--file-watch", default="auto", choices=("auto", "fanotify", "inotify"))
    parser.add_argument("--no-short-lived", action="store_true",
                        help="name_short_lived_writers = false: fanotify without the process log")
    args = parser.parse_args()
    fleet = Fleet(Path(tempfile.mkdtemp(prefix="nodeagent-drift-bench.")), report_interval=10, auto_accept=True,
                  agent_options={"drift_contested_count": 1000000, "file_watch": args.file_watch,
                                 "name_short_lived_writers": not args.no_short_lived})
    results: dict[str, dict[str, list[float]]] = {}
    try:
        node = fleet.add_node("drift1", ["eth1", "eth2"])
        fleet.start("coordinator")
        fleet.start("drift1")
        (fleet.directory / "state.yaml").write_text(yaml.safe_dump(DOCUMENT))
        wait(lambda: "drift1" in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout, 60)
        fleet.ctl("node", "set-state", "drift1", str(fleet.directory / "state.yaml"))
        status_file = fleet.directory / "drift1/state/status.json"
        wait(lambda: status_file.exists() and json.loads(status_file.read_text())["generation"] == 1, 60)
        time.sleep(1)
        for kind in args.kinds:
            resource, change, fixed = KINDS[kind]
            detected, corrected = [], []
            for _ in range(args.trials):
                start = time.time()
                change(fleet, node)
                wait(lambda: fixed(fleet, node))

                def recorded():
                    events = json.loads(status_file.read_text()).get("drift", [])
                    return [e for e in events if e["resource"] == resource and e["seen_at"] >= start
                            and e["fixed_at"]]
                try:
                    event = wait(recorded)[0]
                except TimeoutError:
                    raise SystemExit(f"{kind}: no drift record after {start}: "
                                     f"{json.loads(status_file.read_text()).get('drift', [])[-3:]}") from None
                detected.append(event["seen_at"] - start)
                corrected.append(event["fixed_at"] - start)
                time.sleep(0.4)  # let the agent's own events settle before the next change
            results[kind] = {"detected": detected, "corrected": corrected}
            print(f"  {kind:26s} detected median {statistics.median(detected) * 1000:6.1f} ms "
                  f"p99 {percentile(detected, 0.99) * 1000:6.1f}   corrected median "
                  f"{statistics.median(corrected) * 1000:6.1f} ms p99 {percentile(corrected, 0.99) * 1000:6.1f}",
                  flush=True)
        heard = json.loads(status_file.read_text()).get("attribution", {}).get("file", "?")
        agent = psutil.Process(fleet.processes["drift1"].pid)
        execs = procevents.ProcessEvents()
        before, started = sum(agent.cpu_times()[:2]), 0
        deadline = time.monotonic() + args.idle
        while time.monotonic() < deadline:
            time.sleep(0.5)
            started += sum(1 for e in execs.read() if e.what == procevents.EXEC)
        idle_cpu = 100 * (sum(agent.cpu_times()[:2]) - before) / args.idle
        execs.close()
        rss, threads = agent.memory_info().rss / 2 ** 20, agent.num_threads()
    finally:
        fleet.close()
    print(f"files heard by {heard}")
    print(f"agent idle CPU over {args.idle:.0f} s, nothing drifting: {idle_cpu:.2f} % "
          f"(the machine started {started / args.idle:.1f} programs/s meanwhile); RSS {rss:.1f} MiB, "
          f"{threads} threads")
    for kind, figures in results.items():
        print(json.dumps({"benchmark": "drift", "kind": kind, "trials": args.trials, "file_watch": args.file_watch,
                          "detected_median_ms": round(statistics.median(figures["detected"]) * 1000, 2),
                          "detected_p99_ms": round(percentile(figures["detected"], 0.99) * 1000, 2),
                          "corrected_median_ms": round(statistics.median(figures["corrected"]) * 1000, 2),
                          "corrected_p99_ms": round(percentile(figures["corrected"], 0.99) * 1000, 2)}))
    print(json.dumps({"benchmark": "drift_idle", "seconds": args.idle, "agent_cpu_percent": round(idle_cpu, 3),
                      "file_watch": args.file_watch, "short_lived": not args.no_short_lived, "heard_by": heard,
                      "machine_execs_per_s": round(started / args.idle, 1),
                      "agent_rss_mib": round(rss, 1), "agent_threads": threads}))


if __name__ == "__main__":
    main()
