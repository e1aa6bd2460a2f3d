"""Every benchmark in one run: each started as its own process, one after the other, then one table of what they
printed and every JSON line, beside the machine they ran on (cores, load average: figures taken on a loaded
machine are noisy, so each benchmark quotes medians).

The quick set takes about ten minutes; ``--all`` adds the long ones (a real OpenStack, a thousand agents,
hypothesis, Salt and Ansible beside nodeagent). ``--only NAME ...`` runs those. Run as root with RabbitMQ up:

    .venv/bin/python benchmarks/run_all.py [--all | --only local_commands drift ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> its arguments in this run (small enough for the whole set to take minutes).
QUICK = {
    "local_commands": ["--runs", "5"],
    "agent_footprint": ["--idle", "60"],
    "drift": ["--trials", "20", "--idle", "10"],
    "reconcile": ["50"],
    "lint": ["2025.2", "10", "20"],
    "ini": ["1000", "5000"],
    "converge": ["--nodes", "10", "100"],
    "report_path": ["--nodes", "200", "--rounds", "5"],
    "rpc_floor": ["--calls", "500", "--rounds", "3", "--rate", "50"],
    "fleet": ["--pushes", "20", "--idle", "10"],
    "teardown": ["--trials", "3"],
    "sigkill": ["50"],
}
LONG = {
    "outage": [], "guides": ["--runs", "1"], "nova": ["--runs", "1"], "traffic": ["--runs", "1"],
    "packages": ["10"], "fuzz": ["1000"], "scale": [], "peers/peers": ["--runs", "3"],
    "rollout": ["--agents", "20", "--runs", "3"], "web": ["100", "1000"],
}
# Fields that say which case a line is about, not a figure.
LABELS = ("command", "kind", "case", "guide", "nodes", "keys", "release", "mode")


def run(name: str, args: list[str]) -> tuple[list[dict], str, float]:
    """One benchmark's JSON lines, the tail of what it printed when it failed, and its seconds."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *args], cwd=HERE.parent, capture_output=True,
                          text=True, timeout=3600)
    lines = []
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    failed = "" if done.returncode == 0 else (done.stderr or done.stdout)[-600:]
    return lines, failed, time.monotonic() - start


def row(record: dict) -> tuple[str, str]:
    """A JSON line as (what it is, its figures)."""
    label = " ".join([str(record.get("benchmark", "?"))] + [str(record[k]) for k in LABELS if k in record])
    figures = [f"{k}={v}" for k, v in record.items() if k != "benchmark" and k not in LABELS
               and isinstance(v, (int, float)) and not isinstance(v, bool)]
    return label, " ".join(figures)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--all", action="store_true", help="the long benchmarks too")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these benchmarks")
    parser.add_argument("--json", metavar="FILE", help="also write the JSON lines to FILE")
    args = parser.parse_args()
    suite = {**QUICK, **(LONG if args.all else {})}
    if args.only:
        unknown = sorted(set(args.only) - set(QUICK) - set(LONG))
        if unknown:
            raise SystemExit(f"no benchmark named {', '.join(unknown)} (known: {', '.join(sorted({*QUICK, *LONG}))})")
        suite = {name: {**QUICK, **LONG}[name] for name in args.only}
    machine = {"benchmark": "machine", "cores": os.cpu_count(), "python": platform.python_version(),
               "kernel": platform.release(), "load_average_start": round(os.getloadavg()[0], 2)}
    records: list[dict] = [machine]
    failures: dict[str, str] = {}
    for name, bench_args in suite.items():
        print(f"-- {name} {' '.join(bench_args)}", flush=True)
        lines, failed, seconds = run(name, bench_args)
        records += lines
        if failed:
            failures[name] = failed
        print(f"   {len(lines)} figures in {seconds:.0f} s{', FAILED' if failed else ''} "
              f"(load average {os.getloadavg()[0]:.2f})", flush=True)
    records[0]["load_average_end"] = round(os.getloadavg()[0], 2)
    rows = [row(r) for r in records]
    width = max(len(label) for label, _ in rows)
    print(f"\n{'what':{width}s}  figures (medians unless named; goals as goal_*)")
    for label, figures in rows:
        print(f"{label:{width}s}  {figures}")
    for name, text in failures.items():
        print(f"\n{name} failed:\n{text}")
    print()
    for record in records:
        print(json.dumps(record))
    if args.json:
        Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in records))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
