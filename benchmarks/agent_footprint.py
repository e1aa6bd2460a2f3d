"""What one agent holds while it watches the drift tests' document: threads, sockets, inotify instances.

One agent on a lab node (with its coordinator) enforces tests/drift_kinds.DOCUMENT (files, a
sysctl, a Linux bridge, an OVS bridge, ethtool features); once converged, its process is
counted with psutil and /proc. The agent is the one of the Python running this script
(``/other/venv/bin/python benchmarks/agent_footprint.py`` counts another tree's agent).

Run as root with RabbitMQ up:  .venv/bin/python benchmarks/agent_footprint.py
"""

from __future__ import annotations

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


def main() -> None:
    fleet = Fleet(Path(tempfile.mkdtemp(prefix="nodeagent-footprint.")), report_interval=10, auto_accept=True)
    try:
        fleet.add_node("fp1", ["eth1", "eth2"])
        fleet.start("coordinator")
        fleet.start("fp1")
        (fleet.directory / "state.yaml").write_text(yaml.safe_dump(DOCUMENT))
        wait_until(lambda: "fp1" in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout, 60)
        fleet.ctl("node", "set-state", "fp1", str(fleet.directory / "state.yaml"))
        status = fleet.directory / "fp1/state/status.json"
        wait_until(lambda: status.exists() and json.loads(status.read_text())["generation"] == 1, 60)
        time.sleep(3)  # the watches started after the apply
        figures = count(fleet.processes["fp1"].pid)
    finally:
        fleet.close()
    print(f"agent ({sys.executable}): {figures['threads']} threads, {figures['sockets']} sockets "
          f"({figures['netlink_and_other_sockets']} netlink), {figures['inotify']} inotify")
    print(json.dumps({"benchmark": "agent_footprint", "python": sys.executable, **figures}))


if __name__ == "__main__":
    main()
