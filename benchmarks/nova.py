"""What the lab's Nova (fake virt driver) costs: its one-time steps, and a server's boot to ACTIVE.

    .venv/bin/python benchmarks/nova.py [--runs N]

Deploys the three-node guide (Open vSwitch + GRE, 2025.2) with the real Nova (``labnova``), then boots N servers
one after the other on a self-service network, each deleted before the next. Prints the controller's first
reconcile (Neutron's and Nova's databases, schemas, cells and Keystone entries), how long until compute1 is
Nova's hypervisor, the median boot to ACTIVE, the Nova processes' memory (RSS), and one JSON line.
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
from nodeagent.testing import labguide, labnova  # noqa: E402
from nodeagent.testing.labguide import Deployment  # noqa: E402
from nodeagent.testing.waiting import wait_until  # noqa: E402


def nova_rss_mb(deployment: Deployment) -> float:
    """The resident memory of every process started from the Nova venv (placement, nova-*, the Glance stub)."""
    venv = str(deployment.cloud.nova_venv)
    total = 0
    for line in subprocess.run(["ps", "-eo", "rss=,args="], capture_output=True, text=True).stdout.splitlines():
        rss, _, command = line.strip().partition(" ")
        if venv in command:
            total += int(rss)
    return round(total / 1024, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    deployment = Deployment(Path(tempfile.mkdtemp(prefix="nodeagent-bench-nova.")), labguide.three_node(), nova=True)
    try:
        deployment.up()
        started = time.monotonic()
        deployment.deploy()  # returns once the controller's first reconcile is done
        controller = time.monotonic() - started
        cloud = deployment.neutron.connection
        wait_until(lambda: [h.name for h in cloud.compute.hypervisors()] == ["compute1"], 600, "compute1 in Nova")
        hypervisor = time.monotonic() - started
        deployment.wait_alive(600)
        network = cloud.network.create_network(name="bench-nova")
        cloud.network.create_subnet(network_id=network.id, ip_version=4, cidr="198.19.252.0/24")
        boots = []
        for run in range(args.runs):
            server, seconds = labnova.boot(cloud, network.id, f"bench-nova-{run}")
            boots.append(seconds)
            cloud.compute.delete_server(server)
            cloud.compute.wait_for_delete(server, wait=120)
        memory = nova_rss_mb(deployment)
    finally:
        deployment.close()
    result = {"controller_first_reconcile_s": round(controller, 1), "hypervisor_listed_s": round(hypervisor, 1),
              "boot_to_active_median_s": round(statistics.median(boots), 1), "nova_rss_mb": memory}
    print(f"controller's first reconcile (Neutron + Nova one-time steps): {result['controller_first_reconcile_s']} s")
    print(f"compute1 listed as Nova's hypervisor after:                 {result['hypervisor_listed_s']} s")
    print(f"boot to ACTIVE, median of {args.runs}:                              "
          f"{result['boot_to_active_median_s']} s ({', '.join(f'{b:.1f}' for b in boots)})")
    print(f"Nova's processes (placement, nova-*, Glance stub), RSS:        {memory} MB")
    print(json.dumps({"benchmark": "nova", "runs": args.runs, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
