"""The README's main job: the three-node guide deployed from roles onto the real OpenStack services.

A lab cloud (MariaDB, Keystone 28, memcached, a RabbitMQ vhost) and three lab nodes
(controller, network1, compute1): each a network namespace with its own Open vSwitch, a
systemd of its own running the real neutron units (2025.2: neutron-api, neutron-rpc-server, the
Open vSwitch, DHCP, L3 and metadata agents), and a nodeagent. The coordinator renders the
guide's roles, checks the fleet, signs and pushes; the agents apply and keep it true; the guide's
own last step, `openstack network agent list`, judges the result; then packets do:
`nodeagentctl verify --traffic` with a provider network from variables and an upstream router (its verdict is
the demo's exit status). Nova is left to the tests (its fake-driver services cost about 100 s and 700 MB more).
Nothing of the host is touched. Runs until Ctrl-C (--once: stop after the tour), then cleans up.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
from nodeagent.testing import labguide  # noqa: E402
from nodeagent.testing.labcloud import wait_until  # noqa: E402
from nodeagent.testing.labguide import Deployment  # noqa: E402

STARTED = time.monotonic()


def step(text: str) -> None:
    print(f"\n\033[1m== [{time.monotonic() - STARTED:5.0f} s] {text}\033[0m", flush=True)


def show(deployment: Deployment, *args: str, timeout: float = 60) -> int:
    """Run nodeagentctl as the operator would, print what it says; its exit status."""
    print(f"$ nodeagentctl {' '.join(args)}", flush=True)
    out = deployment.ctl(*args, check=False, timeout=timeout)
    print(out.stdout + out.stderr, end="", flush=True)
    return out.returncode


def agent_list(deployment: Deployment) -> None:
    """What the guide's 'openstack network agent list' prints, from the real Neutron API."""
    print("$ openstack network agent list", flush=True)
    rows = sorted(deployment.neutron.agents(), key=lambda a: (a["host"], a["binary"]))
    print(f"{'Agent Type':<20} {'Host':<12} {'Alive':<6} Binary")
    for agent in rows:
        print(f"{agent['type']:<20} {agent['host']:<12} {':-)' if agent['alive'] else 'XXX':<6} {agent['binary']}")


def main_pid(deployment: Deployment, host: str, unit: str) -> str:
    systemctl = deployment.fleet.systemds[host].systemctl
    return subprocess.run([*systemctl, "show", "-p", "MainPID", "--value", unit], capture_output=True,
                          text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", help="stop after the tour instead of running until Ctrl-C")
    parser.add_argument("--keep", action="store_true", help="keep the lab folder (logs) instead of removing it")
    args = parser.parse_args()
    traffic = 1
    deployment = Deployment(Path(tempfile.mkdtemp(prefix="nodeagent-demo.")), labguide.three_node())
    try:
        step(f"a lab cloud and three lab nodes running the real services (everything under {deployment.directory})")
        deployment.up(progress=print)
        show(deployment, "node", "list", "-c", "Host", "-c", "Alive", "-c", "State")

        step("the operator's steps: secrets (stdin, never echoed), variables, the controller first, then the rest")
        deployment.deploy(progress=print)
        show(deployment, "secret", "list")
        show(deployment, "var", "list", "--node", "network1")

        step("the guide's verification: every agent the roles run, alive in Neutron")
        checks = deployment.wait_alive(600)
        print(f"{sum(c.ok for c in checks)}/{len(checks)} expected agents alive "
              f"{time.monotonic() - STARTED:.0f} s after the start")
        agent_list(deployment)
        show(deployment, "node", "list")
        show(deployment, "verify")

        step("someone breaks compute1's transport_url by hand: nodeagent puts it back and restarts the agent")
        conf = deployment.fleet.directory / "compute1/root/etc/neutron/neutron.conf"
        agent_pid = main_pid(deployment, "compute1", "neutron-openvswitch-agent")
        conf.write_text(conf.read_text().replace("@controller:5672/", "@nowhere.invalid:5672/"))
        wait_until(lambda: "agent-neutron-conf" in deployment.ctl("drift", "list", "-f", "value").stdout, 60,
                   "the drift record")
        show(deployment, "drift", "list", "-c", "Node", "-c", "Resource", "-c", "State", "-c", "Changes")
        wait_until(lambda: main_pid(deployment, "compute1", "neutron-openvswitch-agent") not in ("0", agent_pid),
                   120, "the agent restarted")
        print(f"neutron-openvswitch-agent on compute1 restarted (PID {agent_pid} -> "
              f"{main_pid(deployment, 'compute1', 'neutron-openvswitch-agent')})")
        deployment.wait_alive(300)
        agent_list(deployment)
        show(deployment, "events", "--type", "drift.*", "-c", "Time", "-c", "Node", "-c", "Type", "-c", "Detail")

        step("packets: a provider network from variables, an upstream router, and stand-in instances on network1 "
             "and compute1 (DHCP over GRE, router, each other, SNAT, floating IPs)")
        upstream = deployment.add_upstream("198.19.67.1/24")
        for key, value in (("provider_network_gateway", "198.19.67.1"),
                           ("provider_network_pool", "198.19.67.100-198.19.67.150"),
                           ("provider_network_cidr", "198.19.67.0/24")):
            show(deployment, "var", "set", key, value)
        wait_until(lambda: deployment.reconciled("controller"), 300, "the provider network made")
        # about 45 s on an idle machine, minutes on a loaded one: more than an ordinary command's minute
        traffic = show(deployment, "verify", "--traffic", "--outside-access", f"ip netns exec {upstream}",
                       timeout=600)
        print(f"verify --traffic {'passed' if traffic == 0 else 'FAILED'} {time.monotonic() - STARTED:.0f} s "
              "after the start", flush=True)
        if not args.once:
            step(f"running; try: .venv/bin/nodeagentctl --config-file {deployment.fleet.coordinator_conf} verify"
                 "   (Ctrl-C stops and cleans up)")
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            while not stop.wait(1):
                pass
    finally:
        step("cleaning up: agents, coordinator, services, namespaces, lab systemds, the lab cloud, its folder")
        deployment.close()
        if args.keep:
            print(f"kept {deployment.directory} (logs; its clouds.yaml holds the lab admin password)")
        else:
            labguide.remove_lab(deployment.directory)
    return 0 if traffic == 0 else 1  # the demo ends with the packets' verdict


if __name__ == "__main__":
    sys.exit(main())
