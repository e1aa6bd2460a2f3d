"""Local commands import what they use, and nothing of the fleet: the modules the installed ``nodeagent``
holds when it exits (the time it takes is in benchmarks/local_commands.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import EXAMPLES

EXAMPLE = str(EXAMPLES / "network-node.yaml")
# Runs a console script (argv[2:]) and writes the names in sys.modules to argv[1] as it exits.
LISTING = """
import atexit, json, runpy, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps([n for n, m in sys.modules.items() if m is not None])))
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
# The broker's stack: oslo.messaging, and eventlet with dnspython, which ovs.poller would bring otherwise.
FLEET_ONLY = {"oslo_messaging", "kombu", "eventlet", "dns"}
# pyroute2's package __init__ loads these; the drivers take only the submodules they need.
WHOLE_PYROUTE2 = {"pyroute2.ndb", "pyroute2.ipdb", "pyroute2.nftables", "pyroute2.ipset"}


def imported(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run the installed ``nodeagent ARGS`` as an operator would; its result and every module it loaded."""
    script = Path(sys.executable).parent / "nodeagent"
    with tempfile.NamedTemporaryFile("r", suffix=".json") as listing:
        done = subprocess.run([sys.executable, "-c", LISTING, listing.name, str(script), *args],
                              capture_output=True, text=True, timeout=120)
        modules = set(json.loads(listing.read() or "[]"))
    assert modules, done.stderr[-2000:]
    return done, modules


def tops(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_help_loads_neither_the_engine_nor_the_fleet():
    done, modules = imported("--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not tops(modules) & FLEET_ONLY
    assert not modules & {"nodeagent.node.engine", "nodeagent.optionregistry", "oslo_config", "pyroute2",
                          "ovsdbapp", "yaml"}


def test_lint_loads_no_driver_library():
    done, modules = imported("lint", EXAMPLE)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not tops(modules) & (FLEET_ONLY | {"pyroute2", "ovsdbapp", "ovs", "psutil"})
    # Validating makes only the drivers the document names.
    drivers = {name for name in modules if name.startswith("nodeagent.drivers.")}
    assert drivers == {f"nodeagent.drivers.{d}" for d in ("ini", "file", "symlink", "sysctl", "ovs_bridge",
                                                          "ethtool")}


def test_plan_and_apply_on_a_node_load_only_the_documents_drivers(lab, root):
    where = ["--root", str(root), "--netns", lab.name, "--ovsdb", lab.ovsdb]
    for command, status in (("apply", 0), ("plan", 0), ("apply", 0)):
        done, modules = imported(command, EXAMPLE, *where)
        assert done.returncode == status, done.stderr[-2000:]
        assert not tops(modules) & FLEET_ONLY, f"{command}: {sorted(tops(modules) & FLEET_ONLY)}"
        assert not modules & WHOLE_PYROUTE2, f"{command}: {sorted(modules & WHOLE_PYROUTE2)}"
        assert {"ovsdbapp", "pyroute2.ethtool.ioctl"} <= modules  # the network drivers did their work
        # Offload features are an ioctl: neither rtnetlink nor ethtool's generic netlink client is loaded.
        assert not modules & {"pyroute2.iproute.linux", "pyroute2.ethtool.ethtool"}, command
        assert not modules & {"nodeagent.drivers.linux_bridge", "nodeagent.drivers.package",
                              "nodeagent.drivers.kernel_module", "nodeagent.drivers.command"}
    assert lab.vsctl("br-exists", "br-ex").returncode == 0
    assert "generic-receive-offload: off" in lab.exec("ethtool", "-k", "eth2").stdout


def test_a_driver_that_cannot_load_refuses_only_the_documents_that_use_it(tmp_path, root):
    """A third party's broken driver (installed, its module failing on import) stops no other document."""
    site = tmp_path / "site"
    (site / "broken_driver-1.0.dist-info").mkdir(parents=True)
    (site / "broken_driver-1.0.dist-info/METADATA").write_text("Metadata-Version: 2.1\nName: broken-driver\n"
                                                               "Version: 1.0\n")
    (site / "broken_driver-1.0.dist-info/entry_points.txt").write_text(
        "[nodeagent.drivers]\nbroken = broken_driver:BrokenDriver\n")
    (site / "broken_driver.py").write_text("raise ImportError('needs libfoo 2')\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    script = str(Path(sys.executable).parent / "nodeagent")
    uses = tmp_path / "uses.yaml"
    uses.write_text("node: n1\nresources:\n  - {id: thing, driver: broken, name: x}\n")
    refused = subprocess.run([script, "apply", str(uses), "--root", str(root)], capture_output=True, text=True,
                             env=env, timeout=120)
    assert refused.returncode == 1
    assert "resource 'thing': field 'driver' names driver 'broken', which is installed but could not be loaded: " \
           "needs libfoo 2" in refused.stderr
    other = tmp_path / "other.yaml"
    other.write_text("node: n1\nresources:\n  - {id: dnsmasq, driver: file, path: /etc/neutron/dnsmasq-neutron.conf, "
                     "content: \"dhcp-option-force=26,1454\\n\"}\n")
    applied = subprocess.run([script, "apply", str(other), "--root", str(root)], capture_output=True, text=True,
                             env=env, timeout=120)
    assert applied.returncode == 0, applied.stderr
    assert (root / "etc/neutron/dnsmasq-neutron.conf").exists()
