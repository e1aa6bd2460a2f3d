"""The shipped agent unit under a real systemd (PID 1 of its own namespaces): Type=notify start, status
line, and a clean stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nodeagent.testing.lab import Fleet, LabSystemd
from tests.conftest import REPO
from nodeagent.testing.waiting import wait_until
from tests.functional.test_systemd import DNSMASQ


def show(systemd, unit, *properties) -> dict[str, str]:
    out = subprocess.run([*systemd.systemctl, "show", unit, "-p", ",".join(properties)],
                         capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def watchdog_fed(systemd) -> str:
    """When systemd last heard WATCHDOG=1 from the agent (monotonic, microseconds)."""
    return show(systemd, "nodeagent.service", "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]


def test_the_agent_runs_as_a_notify_service_with_its_hardening(tmp_path):
    fleet = Fleet(tmp_path / "fleet", transport_url="rabbit://guest:guest@127.0.0.1:1/")  # no broker needed
    systemd = LabSystemd(tmp_path / "systemd")
    try:
        fleet.add_node("node-u", ["eth2"])
        fleet.cache_document("node-u", {"generation": 4, "resources": [DNSMASQ]})
        unit = (REPO / "systemd/nodeagent.service").read_text().replace(
            "/usr/bin/nodeagent --config-file /etc/nodeagent/nodeagent.conf",
            f"{Path(sys.executable).parent}/nodeagent --config-file {fleet.agent_conf('node-u')}")
        systemd.add_unit("nodeagent.service", unit)
        # The lab keeps everything under one scratch directory: the unit writes there, not in /var/lib.
        systemd.add_unit("nodeagent.service.d/lab.conf", (
            "[Service]\nStateDirectory=\nReadWritePaths=\nProtectHome=false\n"  # this venv's python is in /root
            f"ReadWritePaths={fleet.directory}\nPrivateTmp=false\n"
            f"StandardOutput=append:{tmp_path}/agent.log\nStandardError=inherit\n"))
        systemd.start()
        started = subprocess.run([*systemd.systemctl, "start", "nodeagent.service"], capture_output=True, text=True,
                                 timeout=120)
        assert started.returncode == 0, show(systemd, "nodeagent.service", "ExecMainStatus", "Result")  # READY=1
        values = show(systemd, "nodeagent.service", "ActiveState", "StatusText", "Type", "WatchdogUSec")
        assert values["ActiveState"] == "active" and values["Type"] == "notify"
        assert values["StatusText"].startswith("generation 4:")
        assert values["WatchdogUSec"] == "1min"
        assert (fleet.directory / "node-u/root/etc/neutron/dnsmasq-neutron.conf").exists()
        # Still running well after its start, not merely not dead yet: systemd saw its main loop feed the
        # watchdog again (every 10 s, worker.TICK), twice.
        pings = [watchdog_fed(systemd)]
        for _ in range(2):
            pings.append(wait_until(lambda: (now := watchdog_fed(systemd)) != pings[-1] and now, 30, "a watchdog ping"))
        assert show(systemd, "nodeagent.service", "ActiveState")["ActiveState"] == "active"
        stopped = subprocess.run([*systemd.systemctl, "stop", "nodeagent.service"], capture_output=True, timeout=60)
        assert stopped.returncode == 0
        wait_until(lambda: show(systemd, "nodeagent.service", "ActiveState")["ActiveState"] == "inactive")
        assert show(systemd, "nodeagent.service", "Result")["Result"] == "success"
    finally:
        systemd.stop()
        fleet.close()
    assert not Path("/var/lib/nodeagent").exists()  # the host's /var/lib untouched
