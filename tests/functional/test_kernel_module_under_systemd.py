"""The kernel_module driver under the shipped, hardened agent unit and a real systemd (PID 1 of its own
namespaces): the module tree is hidden from the agent (ProtectKernelModules=true hides /lib/modules; here the
node's root's tree, by InaccessiblePaths), so the agent writes the list and asks systemd-modules-load, the real
program, run by systemd outside the agent's sandbox.

This machine's kernel has no module support, so no module can really be loaded here: the test shows the agent
reaching systemd-modules-load, and a module that is still not loaded afterwards reported by name with the
list put back as it was."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nodeagent.testing.lab import Fleet, LabSystemd
from nodeagent.testing.waiting import wait_until
from tests.conftest import REPO
from tests.functional.test_agent_under_systemd import show
from tests.functional.test_kernel_module import PERSIST, live_module

pytestmark = pytest.mark.timeout(300)
ABSENT = "nodeagent_absent"  # in no module tree


def reported(spool: Path) -> str:
    """What the agent reported of its failed applies (its log goes to a journal this lab does not have)."""
    events = [json.loads(path.read_text()) for path in sorted(spool.glob("*.json"))]
    return " ".join(event["detail"] for event in events if event["type"] == "apply.failed")


def test_under_the_hardened_unit_the_agent_asks_systemd_to_load_its_modules(tmp_path):
    fleet = Fleet(tmp_path / "fleet", transport_url="rabbit://guest:guest@127.0.0.1:1/")  # no broker needed
    systemd = LabSystemd(tmp_path / "systemd")
    live = live_module()
    try:
        fleet.add_node("node-k", ["eth2"])
        root = fleet.directory / "node-k" / "root"
        resource = {"id": "kernel-modules", "driver": "kernel_module", "persist": PERSIST}
        fleet.cache_document("node-k", {"generation": 2, "resources": [{**resource, "modules": [live, ABSENT]}]})
        unit = (REPO / "systemd/nodeagent.service").read_text().replace(
            "/usr/bin/nodeagent --config-file /etc/nodeagent/nodeagent.conf",
            f"{Path(sys.executable).parent}/nodeagent --config-file {fleet.agent_conf('node-k')}")
        systemd.add_unit("nodeagent.service", unit)
        systemd.add_unit("nodeagent.service.d/lab.conf", (
            "[Service]\nStateDirectory=\nReadWritePaths=\nProtectHome=false\n"
            f"ReadWritePaths={fleet.directory}\nInaccessiblePaths={root}/lib/modules\nPrivateTmp=false\n"))
        # The real program; the node's list is under its root, not in the host's /etc/modules-load.d.
        systemd.add_unit("systemd-modules-load.service", (
            "[Unit]\nDescription=Load Kernel Modules (the lab node's list)\n"
            "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
            f"ExecStart=/lib/systemd/systemd-modules-load {root}{PERSIST}\n"))
        systemd.start()
        assert show(systemd, "systemd-modules-load.service", "InactiveExitTimestampMonotonic") == {
            "InactiveExitTimestampMonotonic": "0"}
        started = subprocess.run([*systemd.systemctl, "start", "nodeagent.service"], capture_output=True, text=True,
                                 timeout=120)
        assert started.returncode == 0, show(systemd, "nodeagent.service", "ExecMainStatus", "Result")

        spool = fleet.directory / "node-k/state/spool"
        wait_until(lambda: ABSENT in reported(spool), 60, "the agent reported the module")
        assert (f"kernel-modules: systemd did not load kernel module '{ABSENT}' (systemd-modules-load.service: it "
                "ran, and the module is not loaded: not in the node's module tree, or refused by the kernel); the "
                f"module tree is hidden from the agent, so systemd was asked; {PERSIST} is as it was"
                ) in reported(spool)
        ran = show(systemd, "systemd-modules-load.service", "InactiveExitTimestampMonotonic", "Result")
        assert ran["InactiveExitTimestampMonotonic"] != "0" and ran["Result"] == "success"  # asked, and it ran
        assert not (root / PERSIST.lstrip("/")).exists()  # as it was: there was none

        # A module the kernel has already: only listed for the next boot, systemd not asked again.
        subprocess.run([*systemd.systemctl, "stop", "nodeagent.service"], check=True, timeout=60)
        fleet.cache_document("node-k", {"generation": 3, "resources": [{**resource, "modules": [live]}]})
        before = show(systemd, "systemd-modules-load.service", "InactiveExitTimestampMonotonic")
        subprocess.run([*systemd.systemctl, "start", "nodeagent.service"], check=True, timeout=120)
        wait_until(lambda: (root / PERSIST.lstrip("/")).exists(), 60, "the list written")
        assert (root / PERSIST.lstrip("/")).read_text() == f"{live}\n"
        assert show(systemd, "systemd-modules-load.service", "InactiveExitTimestampMonotonic") == before
    finally:
        systemd.stop()
        fleet.close()
