"""How long `nodeagentctl verify --traffic` takes on the three-node guide, inside and to the outside.

    .venv/bin/python benchmarks/traffic.py [--runs N]

Deploys the three-node guide (Open vSwitch + GRE, 2025.2, userspace datapath) once with the provider network
and an upstream router, then times N probes of each kind: stand-ins on network1 and compute1 with DHCP, the
DHCP port, the router and each other ("inside"); the same plus the router's gateway, SNAT to the upstream
router and a floating IP per stand-in pinged from it ("outside"); one node with its tunnel endpoint back on the
plain eth1, the broken hop named ("broken"). Prints medians and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
from nodeagent.testing import labguide  # noqa: E402
from nodeagent.testing.labguide import Deployment, deployed  # noqa: E402
from nodeagent.testing.waiting import wait_until  # noqa: E402

PROVIDER = (("provider_network_gateway", "198.19.67.1"), ("provider_network_pool", "198.19.67.100-198.19.67.150"),
            ("provider_network_cidr", "198.19.67.0/24"))


def probe(deployment: Deployment, *args: str, expect: int = 0) -> float:
    program = Path(sys.executable).parent / "nodeagentctl"
    started = time.monotonic()
    done = subprocess.run([str(program), "--config-file", str(deployment.fleet.coordinator_conf), "verify",
                           "--traffic", "-f", "json", *args], capture_output=True, text=True, timeout=600)
    took = time.monotonic() - started
    if done.returncode != expect:
        raise SystemExit(f"verify --traffic {' '.join(args)}: exit {done.returncode}: {done.stdout}{done.stderr}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"inside": [], "outside": [], "broken": []}
    with deployed(Path(tempfile.mkdtemp(prefix="nodeagent-bench-traffic.")), labguide.three_node()) as deployment:
        deployment.wait_alive(600)
        upstream = deployment.add_upstream("198.19.67.1/24")
        for key, value in PROVIDER:
            deployment.set_variable(key, value)
        address = deployment.guide.nodes["compute1"][0]
        node = deployment.fleet.nodes["compute1"]
        for _ in range(args.runs):
            times["outside"].append(probe(deployment, "--outside-access", f"ip netns exec {upstream}"))
        deployment.ctl("var", "set", "--node", "compute1", "mode", "monitor")
        wait_until(lambda: (deployment.node("compute1")["status"] or {}).get("mode") == "monitor", 60)
        node.exec("ip", "addr", "add", address, "dev", "eth1")
        node.exec("ip", "addr", "del", address, "dev", "br-phy")
        for _ in range(args.runs):
            times["broken"].append(probe(deployment, "--node", "compute1", expect=1))
        deployment.ctl("var", "set", "--node", "compute1", "mode", "enforce")
        wait_until(lambda: address in node.exec("ip", "-4", "-o", "addr", "show", "br-phy").stdout, 60)
        # without the provider network's gateway on the router: the inside checks only
        provider = deployment.neutron.connection.network.find_network("provider")
        deployment.neutron.connection.network.update_network(provider, is_router_external=False)
        for _ in range(args.runs):
            times["inside"].append(probe(deployment))
    medians = {kind: round(statistics.median(values), 1) for kind, values in times.items() if values}
    print(f"{'probe':<10} {'median s':>9}  runs")
    for kind, values in times.items():
        print(f"{kind:<10} {medians.get(kind, float('nan')):>9}  {', '.join(f'{v:.1f}' for v in values)}")
    print(json.dumps({"benchmark": "traffic", "runs": args.runs, "median_s": medians}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
