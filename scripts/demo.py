"""The README's main job: the three-node guide deployed from roles by a coordinator and three agents.

Each agent manages its own lab node: a network namespace with its own Open vSwitch, veth
stand-ins for the NICs, a systemd of its own with stand-in units for the neutron and nova
services, and a scratch root for /etc. Over the real RabbitMQ the coordinator renders the
controller, network and compute roles, checks the fleet, signs and pushes; the agents apply,
keep it true, and report. Nothing of the host is touched. Runs until Ctrl-C (--once: stop
after the tour), then cleans up.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import yaml

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
from nodeagent.lab import Fleet  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NODES = {
    "controller": ("198.18.3.11/24", ["controller"], ["neutron-server", "nova-api"]),
    "network1": ("198.18.3.21/24", ["network"], ["neutron-openvswitch-agent", "neutron-l3-agent",
                                                  "neutron-dhcp-agent", "neutron-metadata-agent"]),
    "compute1": ("198.18.3.31/24", ["compute"], ["neutron-openvswitch-agent", "nova-compute"]),
}
SECRETS = {"RABBIT_PASS": "rabbit-demo", "NEUTRON_PASS": "neutron-demo", "NEUTRON_DBPASS": "db-demo",
           "NOVA_PASS": "nova-demo", "METADATA_SECRET": "metadata-demo"}


def step(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def show(fleet: Fleet, *args: str, stdin: str = "") -> str:
    print(f"$ nodeagentctl {' '.join(args)}", flush=True)
    out = fleet.ctl(*args, stdin=stdin).stdout
    print(out, end="", flush=True)
    return out


def rows(fleet: Fleet) -> list[dict]:
    return yaml.safe_load(fleet.ctl("node", "list", "-f", "yaml").stdout) or []


def wait(check, what: str, fleet: Fleet, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise SystemExit(f"{what} did not happen; logs are in {fleet.directory}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", help="stop after the tour instead of running until Ctrl-C")
    args = parser.parse_args()
    fleet = Fleet(Path(tempfile.mkdtemp(prefix="nodeagent-demo.")), report_interval=2,
                  coordinator_options={"roles_dir": REPO / "etc" / "roles"})
    try:
        step(f"a coordinator and three agents on lab nodes (everything under {fleet.directory})")
        fleet.start("coordinator")
        for host, (address, _, services) in NODES.items():
            node = fleet.add_node(host, ["eth1", "eth2"], services=services)
            node.exec("ip", "addr", "add", address, "dev", "eth1")  # the overlay interface
            fleet.start(host)
        wait(lambda: len(rows(fleet)) == len(NODES), "the agents' enrolment", fleet)
        step("each agent presented its own key; the operator accepts them")
        show(fleet, "node", "list", "-c", "Host", "-c", "Alive", "-c", "State")
        for host in NODES:
            show(fleet, "node", "accept", host)
        wait(lambda: all(r["Alive"] == ":-)" for r in rows(fleet)), "the first heartbeats", fleet)

        step("secrets (read from stdin, never echoed) and the site's variables")
        for key, value in SECRETS.items():
            fleet.ctl("secret", "set", key, stdin=value + "\n")
        show(fleet, "secret", "list")
        # The guide's GRE; netdev as there is no kernel module; no MariaDB or keystone on lab nodes.
        for key, value in (("overlay", "gre"), ("datapath_type", "netdev"), ("manage_database", "false"),
                           ("manage_keystone", "false")):
            fleet.ctl("var", "set", key, value)
        for host in ("network1", "compute1"):
            fleet.ctl("var", "set", "--node", host, "overlay_interface", "eth1")
        fleet.ctl("var", "set", "--node", "network1", "external_interface", "eth2")
        show(fleet, "var", "list", "--node", "network1")

        step("the three-node guide's roles: rendered, checked across the fleet, signed, pushed")
        for host, (_, roles, _) in NODES.items():
            show(fleet, "node", "assign", host, *roles)
        wait(lambda: all(r["State"] == "converged" and r["Generation"] == "1/1" for r in rows(fleet)),
             "convergence", fleet)
        show(fleet, "node", "list")
        print((fleet.directory / "network1/root/etc/neutron/plugins/ml2/openvswitch_agent.ini").read_text())
        print(fleet.nodes["network1"].vsctl("show").stdout)

        step("someone removes eth2 from br-ex on network1 by hand: the agent puts it back at once")
        fleet.nodes["network1"].vsctl("del-port", "br-ex", "eth2")
        wait(lambda: "br-ex" in fleet.ctl("drift", "list", "--node", "network1", "-f", "value").stdout,
             "the drift report", fleet)
        show(fleet, "drift", "list", "-c", "Node", "-c", "Resource", "-c", "State", "-c", "Changes")

        step("a role variable changes: the nodes that read it get a new generation and restart what reads it")
        show(fleet, "var", "set", "region", "RegionTwo")
        wait(lambda: all(r["State"] == "converged" for r in rows(fleet)), "convergence", fleet)
        show(fleet, "node", "list")
        show(fleet, "events", "-c", "Time", "-c", "Node", "-c", "Type")
        if not args.once:
            step(f"running; try: .venv/bin/nodeagentctl --config-file {fleet.coordinator_conf} node list"
                 "   (Ctrl-C stops and cleans up)")
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            while not stop.wait(1):
                pass
    finally:
        step("cleaning up: agents, coordinator, namespaces, lab systemds")
        fleet.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
