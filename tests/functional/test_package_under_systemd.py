"""The package driver under the shipped, hardened agent unit and a real systemd (PID 1 of its own namespaces,
with a D-Bus of its own for systemd-run): the agent cannot write the package database (ProtectSystem=strict;
here the node's root is read-only to it), so it runs apt-get in a transient unit of its own, outside its sandbox.
The root is a scratch one with a repository the test builds: the host's packages are never touched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nodeagent.testing.lab import Fleet, LabSystemd
from nodeagent.testing.waiting import wait_until
from tests.conftest import REPO
from nodeagent.testing import packagerepos
from tests.functional.test_agent_under_systemd import show
from tests.functional.test_package import host_package_state

pytestmark = pytest.mark.timeout(300)
PACKAGES = {"id": "packages", "driver": "package", "manager": "apt", "packages": {"na-tool": "installed"}}


def run_agent(systemd: LabSystemd) -> None:
    started = subprocess.run([*systemd.systemctl, "start", "nodeagent.service"], capture_output=True, text=True,
                             timeout=120)
    assert started.returncode == 0, show(systemd, "nodeagent.service", "ExecMainStatus", "Result")


def status(systemd: LabSystemd) -> str:
    return show(systemd, "nodeagent.service", "StatusText")["StatusText"]


def failure(spool: Path) -> str:
    """What the agent reported of its failed apply (its log goes to a journal this lab does not have)."""
    events = [json.loads(path.read_text()) for path in sorted(spool.glob("*.json"))]
    return " ".join(event["detail"] for event in events if event["type"] == "apply.failed")


def test_the_agent_installs_packages_through_a_transient_unit_under_its_hardened_unit(tmp_path):
    fleet = Fleet(tmp_path / "fleet", transport_url="rabbit://guest:guest@127.0.0.1:1/",  # no broker needed
                  agent_options={"package_command_prefix": ""})
    systemd = LabSystemd(tmp_path / "systemd")
    host = host_package_state()
    try:
        fleet.add_node("node-p", ["eth2"])
        root = fleet.directory / "node-p" / "root"
        packagerepos.apt_root(root, packagerepos.deb_repository(tmp_path))
        fleet.cache_document("node-p", {"generation": 4, "resources": [PACKAGES]})
        unit = (REPO / "systemd/nodeagent.service").read_text().replace(
            "/usr/bin/nodeagent --config-file /etc/nodeagent/nodeagent.conf",
            f"{Path(sys.executable).parent}/nodeagent --config-file {fleet.agent_conf('node-p')}")
        systemd.add_unit("nodeagent.service", unit)
        # As test_agent_under_systemd: the lab's files are writable to the agent, except the node's /usr and /var,
        # which stand for the host's (read-only under ProtectSystem=strict).
        (root / "usr").mkdir()
        systemd.add_unit("nodeagent.service.d/lab.conf", (
            "[Service]\nStateDirectory=\nReadWritePaths=\nProtectHome=false\n"
            f"ReadWritePaths={fleet.directory}\nReadOnlyPaths={root}/usr {root}/var\nPrivateTmp=false\n"
            f"StandardOutput=append:{tmp_path}/agent.log\nStandardError=inherit\n"))
        for name in ("dbus.socket", "dbus.service"):  # systemd-run asks systemd over D-Bus
            systemd.add_unit(name, Path("/lib/systemd/system", name).read_text())
        systemd.start()
        subprocess.run([*systemd.systemctl, "start", "dbus.socket"], check=True, timeout=60)

        # Run as it is, apt-get meets the sandbox: without CAP_SETUID/CAP_SETGID it cannot drop to its _apt user
        # (and /usr and the dpkg database are read-only): the node's packages cannot change.
        run_agent(systemd)
        wait_until(lambda: "failed" in status(systemd), 60, "the package resource tried")
        assert status(systemd) == "generation 4: 1 failed"
        reported = failure(fleet.directory / "node-p/state/spool")
        assert "packages: apt-get exited with 100: E: setgroups 65534 failed" in reported, reported
        assert packagerepos.installed_file(root, "na-tool") is None
        subprocess.run([*systemd.systemctl, "stop", "nodeagent.service"], check=True, timeout=60)

        # The default ('auto': the agent runs under systemd) asks systemd for a transient unit.
        conf = fleet.agent_conf("node-p")
        conf.write_text(conf.read_text().replace("package_command_prefix = \n", "package_command_prefix = auto\n"))
        run_agent(systemd)
        wait_until(lambda: packagerepos.installed_file(root, "na-tool") == "2.0", 60, "na-tool installed")
        wait_until(lambda: status(systemd) in ("generation 4: 1 changed", "generation 4: 1 in_sync"), 60,
                   "the resource changed")
    finally:
        systemd.stop()
        fleet.close()
    assert host_package_state() == host
