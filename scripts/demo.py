"""The README's main job: a coordinator and two agents on lab nodes, converging over RabbitMQ.

Each agent manages its own network namespace (with its own Open vSwitch and veth
stand-ins for NICs) and its own scratch root; nothing of the host is touched.
Run through scripts/demo.sh (which sets the machine up first).
"""

from __future__ import annotations

import argparse
import signal
import warnings
import sys
import tempfile
import time
from pathlib import Path

import yaml

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
from nodeagent.lab import Fleet  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NODES = {"network1": ("network-node.yaml", ["eth2"]), "compute1": ("compute-node.yaml", ["eth1", "eth2"])}


def step(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def show(fleet: Fleet, *args: str) -> str:
    out = fleet.ctl(*args).stdout
    print(out, end="", flush=True)
    return out


def wait_enrolled(fleet: Fleet, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(yaml.safe_load(fleet.ctl("node", "list", "-f", "yaml").stdout) or []) == len(NODES):
            return
        time.sleep(0.5)
    raise SystemExit("the agents did not report; logs are in " + str(fleet.directory))


def wait_converged(fleet: Fleet, generation: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = yaml.safe_load(fleet.ctl("node", "list", "-f", "yaml").stdout) or []
        if len(rows) == len(NODES) and all(r["State"] == "converged" and r["Alive"] == ":-)"
                                           and r["Generation"] == f"{generation}/{generation}" for r in rows):
            return
        time.sleep(0.5)
    raise SystemExit("the fleet did not converge; logs are in " + str(fleet.directory))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the fleet running until Ctrl-C")
    args = parser.parse_args()
    fleet = Fleet(Path(tempfile.mkdtemp(prefix="nodeagent-demo.")), report_interval=2)
    try:
        step(f"a coordinator and two agents, each on its own lab node (files under {fleet.directory})")
        fleet.start("coordinator")
        for name, (_, nics) in NODES.items():
            fleet.add_node(name, nics)
            fleet.start(name)
        wait_enrolled(fleet)
        step("the agents enrolled with their own keys; the operator accepts them")
        show(fleet, "node", "list", "-c", "Host", "-c", "Alive", "-c", "State")
        for name in NODES:
            show(fleet, "node", "accept", name)
        step("each node gets its document: signed, pushed, applied")
        for name, (example, _) in NODES.items():
            document = yaml.safe_load((REPO / "etc/examples" / example).read_text())
            document.pop("node")
            state = fleet.directory / f"{name}.yaml"
            state.write_text(yaml.safe_dump(document))
            show(fleet, "node", "set-state", name, str(state))
        wait_converged(fleet, 1)
        show(fleet, "node", "list")
        step("someone edits ml2_conf.ini on network1 by hand; the coordinator asks the agent for a plan")
        ml2 = fleet.directory / "network1/root/etc/neutron/plugins/ml2/ml2_conf.ini"
        ml2.write_text(ml2.read_text().replace("tenant_network_types = gre", "tenant_network_types = vxlan"))
        show(fleet, "node", "plan", "network1", "-c", "Resource", "-c", "Status", "-c", "Details")
        step("the operator pushes again (generation 2); both nodes converge")
        for name in NODES:
            show(fleet, "node", "set-state", name, str(fleet.directory / f"{name}.yaml"))
        wait_converged(fleet, 2)
        show(fleet, "node", "list")
        step("what happened, as events")
        show(fleet, "events", "-c", "Time", "-c", "Node", "-c", "Type")
        if args.keep:
            step("running; try: " + f".venv/bin/nodeagentctl --config-file {fleet.coordinator_conf} node list"
                 "   (Ctrl-C to stop and clean up)")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        step("cleaning up: agents, coordinator, namespaces")
        fleet.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
