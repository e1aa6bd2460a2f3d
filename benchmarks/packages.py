"""What a package resource costs: observing (every reconcile and every minute) and changing (rare).

Observe: the network role's tools (nine Debian packages) against a copy of this host's dpkg database, as a lab
node reads it, with one bare ``dpkg-query`` of the same names as the floor; and three packages through rpm on a
scratch root (one ``rpm -q --whatprovides`` per package). Apply: installing and removing one tiny package with
apt-get and with dnf on scratch roots with local repositories (``nodeagent.testing.packagerepos``): the
package manager's own start-up is most of it. Nothing touches the host's packages. Run as root:

    .venv/bin/python benchmarks/packages.py [RUNS]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from nodeagent.document.registry import DriverRegistry
from nodeagent.kit.context import Context
from nodeagent.testing import labpackages, packagerepos
from timing import timed  # noqa: E402 (benchmarks/ is the script's directory)

TOOLS = ["iptables", "ipset", "conntrack", "openvswitch-switch", "dnsmasq-base", "dnsmasq-utils", "haproxy", "radvd",
         "iputils-arping"]


def ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    driver = DriverRegistry.from_entry_points().get("package")
    figures = {}
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        lab = base / "lab" / "root"
        lab.mkdir(parents=True)
        labpackages.copy_package_database(lab)
        tools = driver.validate({"manager": "apt", "packages": dict.fromkeys(TOOLS, "installed")})
        ctx = Context(root=lab, backup_dir=None)
        figures["apt_observe_9_ms"] = ms(timed(lambda: driver.observe(tools, ctx), runs))
        floor = ["dpkg-query", f"--admindir={lab}/var/lib/dpkg", "-W", "-f=${Package} ${Version}\n", *TOOLS]
        figures["dpkg_query_floor_ms"] = ms(timed(lambda: subprocess.run(floor, capture_output=True), runs))

        debs, rpms = packagerepos.deb_repository(base), packagerepos.rpm_repository(base)
        apt_root = packagerepos.apt_root(base / "apt" / "root", debs)
        dnf_root = packagerepos.dnf_root(base / "dnf" / "root", rpms)
        for manager, root in (("apt", apt_root), ("dnf", dnf_root)):
            ctx = Context(root=root, backup_dir=None)
            names = {"na-tool": "installed", "na-other": "installed"} if manager == "dnf" else {"na-tool": "installed"}
            spec = driver.validate({"manager": manager, "packages": names})
            if manager == "dnf":
                figures["dnf_observe_2_ms"] = ms(timed(lambda: driver.observe(spec, ctx), runs))
            cycles = max(3, runs // 10)
            install, remove = [], []
            for _ in range(cycles):
                for wanted, samples in (("installed", install), ("absent", remove)):
                    spec = driver.validate({"manager": manager, "packages": {"na-tool": wanted}})
                    changes = driver.diff(spec, driver.observe(spec, ctx))
                    samples += timed(lambda: driver.apply(spec, changes, ctx), 1)
            figures[f"{manager}_install_ms"], figures[f"{manager}_remove_ms"] = ms(install), ms(remove)

    print(f"package observe: 9 apt packages {figures['apt_observe_9_ms']} ms (bare dpkg-query "
          f"{figures['dpkg_query_floor_ms']} ms), 2 rpm packages {figures['dnf_observe_2_ms']} ms")
    print(f"package apply (one tiny package, local repository): apt-get install {figures['apt_install_ms']} ms, "
          f"remove {figures['apt_remove_ms']} ms; dnf install {figures['dnf_install_ms']} ms, "
          f"remove {figures['dnf_remove_ms']} ms")
    print(json.dumps({"benchmark": "packages", "runs": runs, **figures}))


if __name__ == "__main__":
    main()
