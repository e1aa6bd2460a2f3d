"""Local commands as whole processes: CPU, wall time and peak memory of ``nodeagent --help``, ``lint``,
``plan``, a no-change ``apply`` and a first ``apply`` of the network-node example, beside the goals.

A lab node (a namespace with eth2 and a private Open vSwitch) stands for the network node; every first apply
starts from nothing (a new scratch root, the bridges deleted, GRO back on, forwarding off). Each command runs
RUNS times as a child process; CPU (user + system) and peak RSS are the kernel's own accounting of the
child (wait4), run from compiled bytecode as an installed nodeagent is. The ``nodeagent`` run is the one
beside the Python running this script
(``/other/venv/bin/python benchmarks/local_commands.py`` measures another tree's).

Run as root:  .venv/bin/python benchmarks/local_commands.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nodeagent.testing.lab import LabNode  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "etc/examples/network-node.yaml"
# The goals of issue 24: CPU seconds, wall seconds, peak MiB (None: no goal).
GOALS = {"help": (0.1, None, 45), "lint": (0.2, None, 45), "plan": (0.25, 0.3, 45),
         "no-change apply": (0.25, 0.3, 45), "first apply": (None, 0.4, 45)}


def measure(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """One run: CPU seconds (user + system), wall seconds, peak RSS in MiB (the kernel's, of the child)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"cpu": usage.ru_utime + usage.ru_stime, "wall": wall, "rss": usage.ru_maxrss / 1024,
            "exit": process.returncode}


def reset(node: LabNode) -> None:
    """The node as before its first apply."""
    node.vsctl("--if-exists", "del-br", "br-int")
    node.vsctl("--if-exists", "del-br", "br-ex")
    node.exec("ethtool", "-K", "eth2", "gro", "on")
    node.exec("sysctl", "-qw", "net.ipv4.ip_forward=0")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    nodeagent = str(Path(sys.executable).parent / "nodeagent")
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in GOALS}
    with tempfile.TemporaryDirectory(prefix="nodeagent-local.") as scratch:
        node = LabNode(f"na-local-{os.getpid()}", Path(scratch) / "ovs", ["eth2"]).up()
        try:
            root = Path(scratch) / "root"
            where = ["--netns", node.name, "--ovsdb", node.ovsdb]
            commands = {"help": [nodeagent, "--help"], "lint": [nodeagent, "lint", str(EXAMPLE)],
                        "plan": [nodeagent, "plan", str(EXAMPLE), "--root", str(root), *where],
                        "no-change apply": [nodeagent, "apply", str(EXAMPLE), "--root", str(root), *where],
                        "first apply": [nodeagent, "apply", str(EXAMPLE), "--root", str(root), *where]}
            # An installed nodeagent runs from compiled bytecode (pip compiles on install); a shell with
            # PYTHONDONTWRITEBYTECODE (some sandboxes set it) would have every run compile nodeagent's sources
            # anew, 0.04 s no user pays. The children keep their bytecode in the scratch directory instead.
            env = {**os.environ, "PYTHONPYCACHEPREFIX": str(Path(scratch) / "pycache")}
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            for run in range(args.runs + 1):  # the first round warms the caches and is not counted
                shutil.rmtree(root, ignore_errors=True)
                reset(node)
                figures = {"first apply": measure(commands["first apply"], env)}
                for name in ("help", "lint", "plan", "no-change apply"):
                    figures[name] = measure(commands[name], env)
                failed = {name: f["exit"] for name, f in figures.items() if f["exit"] not in (0,)}
                if failed:
                    raise SystemExit(f"commands failed: {failed}")
                if run:
                    for name, value in figures.items():
                        samples[name].append(value)
        finally:
            node.down()
    load = os.getloadavg()
    print(f"local commands, network-node example, {args.runs} runs each, medians "
          f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores)")
    print(f"  {'command':18s} {'CPU s':>7s} {'goal':>6s} {'wall s':>7s} {'goal':>6s} {'peak MiB':>9s} {'goal':>5s}")
    for name, runs in samples.items():
        cpu, wall, rss = (statistics.median(r[key] for r in runs) for key in ("cpu", "wall", "rss"))
        goal_cpu, goal_wall, goal_rss = GOALS[name]
        print(f"  {name:18s} {cpu:7.3f} {_goal(goal_cpu):>6s} {wall:7.3f} {_goal(goal_wall):>6s} "
              f"{rss:9.1f} {_goal(goal_rss):>5s}")
        samples[name] = {"cpu_s": round(cpu, 4), "wall_s": round(wall, 4), "peak_rss_mib": round(rss, 1)}
    for name, figures in samples.items():
        print(json.dumps({"benchmark": "local_commands", "command": name, "runs": args.runs, **figures,
                          "goal_cpu_s": GOALS[name][0], "goal_wall_s": GOALS[name][1],
                          "goal_peak_rss_mib": GOALS[name][2], "load_average": round(load[0], 2)}))


def _goal(value: float | None) -> str:
    return "-" if value is None else f"≤{value:g}"


if __name__ == "__main__":
    main()
