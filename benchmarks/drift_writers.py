"""How often fanotify attribution names a writer fully, by how long the writer lives.

A writer is named from /proc when the watcher reads its event while the writer is alive; else from the
process log (its command line read at exec) when the log was woken in time; else by pid only. Short
programs (``sh -c 'echo >> f'``, ``sed -i``, ``sysctl -w``) live about a millisecond, so the share named
fully falls with the machine's load. Each kind is run TRIALS times against one watched file.

Run as root:  .venv/bin/python benchmarks/drift_writers.py [--trials 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import subprocess  # noqa: E402

from nodeagent.node.fanwatch import FanotifyObserver  # noqa: E402
from nodeagent.testing.waiting import wait_until  # noqa: E402


def kinds(path: Path) -> dict[str, list[str]]:
    return {"sh -c 'echo >> f'": ["sh", "-c", f"echo x >> {path}"],
            "sed -i": ["sed", "-i", "s/x/y/", str(path)],
            "python writer": [sys.executable, "-c", f"open({str(path)!r}, 'a').write('x')"],
            "bash, writes then sleeps 50 ms": ["bash", "-c", f"echo x >> {path}; sleep 0.05; true"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="nodeagent-writers-bench."))
    path = directory / "neutron.conf"
    path.write_text("x\n")
    heard: list = []
    observer = FanotifyObserver([path], lambda _, by: heard.append(by))
    try:
        for kind, command in kinds(path).items():
            counts = {"alive": 0, "from the process log": 0, "pid only": 0}
            for _ in range(args.trials):
                heard.clear()
                writer = subprocess.Popen(command)
                writer.wait()
                by = wait_until(lambda: next((b for b in heard if b is not None and b.pid == writer.pid), None),
                                timeout=10, step=0.002)
                counts["pid only" if by.command is None else "from the process log" if by.exited else "alive"] += 1
                time.sleep(0.01)
            named = 100 * (counts["alive"] + counts["from the process log"]) / args.trials
            print(f"  {kind:32s} named {named:5.1f} %  ({', '.join(f'{k} {v}' for k, v in counts.items())})",
                  flush=True)
            print(json.dumps({"benchmark": "drift_writers", "kind": kind, "trials": args.trials,
                              "named_percent": round(named, 1), **{k.replace(" ", "_"): v for k, v in counts.items()},
                              "load": Path("/proc/loadavg").read_text().split()[0]}))
    finally:
        observer.stop()
        for leftover in directory.iterdir():
            leftover.unlink()
        directory.rmdir()


if __name__ == "__main__":
    main()
