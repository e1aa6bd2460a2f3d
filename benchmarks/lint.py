"""What the option checks cost: registry load, lint of a whole rendered fleet (warm), and a whole `nodeagent lint`.

Renders every role (controller, network, compute) for one release into a fleet of
1 controller, NETWORK network nodes and COMPUTE compute nodes, then times:
* loading the registry data of every service and release (cold, from the gzip files);
* linting every node's document in-process, warm (what the coordinator adds to a push);
* one whole `nodeagent lint` process on the controller's document (start, imports, load, lint).
Prints the figures and one JSON line.

    .venv/bin/python benchmarks/lint.py [RELEASE] [RUNS] [COMPUTE]
"""

from __future__ import annotations

import gzip
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from nodeagent.optionregistry import lint_document, registry
from nodeagent.fleet.roles import Roles
from timing import timed  # noqa: E402 (benchmarks/ is the script's directory)

ROOT = Path(__file__).resolve().parent.parent


class Secrets(dict):
    """Every secret a role asks for, with a made-up value (the roles' list of secrets grows)."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return f"{key.lower()}-s3cret"


SECRETS = Secrets()
NETWORK = 2


def render_fleet(release: str, computes: int) -> dict[str, dict]:
    roles = Roles(ROOT / "etc" / "roles")
    hosts = {"controller": ["controller"], **{f"network{i}": ["network"] for i in range(NETWORK)},
             **{f"compute{i}": ["compute"] for i in range(computes)}}
    fleet = {}
    for index, (host, names) in enumerate(hosts.items()):
        facts = {"interfaces": {"eth1": {"ipv4": [f"198.18.{index // 250}.{index % 250 + 1}/16"]}, "eth2": {}}}
        variables = {"openstack_release": release, "overlay_interface": "eth1", "external_interface": "eth2"}
        fleet[host] = {"node": host, "openstack_release": release,
                       **roles.render(host, names, variables, SECRETS, facts)}
    return fleet


def main() -> None:
    release = sys.argv[1] if len(sys.argv) > 1 else "2025.2"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    computes = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    files = sorted(registry.DATA.glob("*.json.gz"))
    on_disk = sum(p.stat().st_size for p in files)
    raw = sum(len(gzip.decompress(p.read_bytes())) for p in files)

    def load_all():
        registry.available.cache_clear()
        registry.load.cache_clear()
        registry.service_of.cache_clear()
        for service, series in registry.available().items():
            for name in series:
                registry.load(service, name)
    load = timed(load_all, runs)

    fleet = render_fleet(release, computes)
    keys = sum(len(o) for d in fleet.values() for r in d["resources"] if r.get("driver") == "ini"
               for o in r["settings"].values())
    found = [f for d in fleet.values() for f in lint_document(d)]  # warms every cache
    lint = timed(lambda: [lint_document(d) for d in fleet.values()], runs)

    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as stream:
        yaml.safe_dump(fleet["controller"], stream)
        stream.flush()
        program = Path(sys.executable).parent / "nodeagent"
        whole = timed(lambda: subprocess.run([str(program), "lint", stream.name, "-f", "value"],
                                             capture_output=True, check=False), max(3, runs // 4))

    figures = {
        "release": release, "nodes": len(fleet), "ini_keys": keys, "findings": len(found),
        "registry_files": len(files), "registry_bytes_on_disk": on_disk, "registry_bytes_json": raw,
        "registry_load_all_ms_median": round(statistics.median(load) * 1000, 1),
        "fleet_lint_warm_ms_median": round(statistics.median(lint) * 1000, 2),
        "per_node_warm_ms": round(statistics.median(lint) * 1000 / len(fleet), 3),
        "nodeagent_lint_process_ms_median": round(statistics.median(whole) * 1000, 0),
    }
    print(f"registry: {len(files)} files, {on_disk / 1024:.1f} KB on disk ({raw / 1024:.0f} KB of JSON); "
          f"loading all of it: {figures['registry_load_all_ms_median']} ms (median of {runs})")
    print(f"fleet of {len(fleet)} nodes ({keys} ini keys, release {release}): lint warm "
          f"{figures['fleet_lint_warm_ms_median']} ms ({figures['per_node_warm_ms']} ms per node), "
          f"{len(found)} findings")
    print(f"one whole 'nodeagent lint' process (controller document): "
          f"{figures['nodeagent_lint_process_ms_median']} ms median")
    print(json.dumps({"benchmark": "lint", **figures}))


if __name__ == "__main__":
    main()
