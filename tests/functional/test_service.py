"""The service driver against a real systemd running as PID 1 of its own namespaces."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeagent.kit.context import Context
from nodeagent.node.engine import Engine
from nodeagent.kit.errors import InvalidDocument
from nodeagent.testing.lab import STAND_IN_UNIT, LabSystemd
from nodeagent.kit.result import Status
from tests.functional.helpers import details, reconcile
from nodeagent.testing.waiting import wait_until



@pytest.fixture(scope="module")
def systemd(tmp_path_factory):
    directory = tmp_path_factory.mktemp("systemd")
    lab = LabSystemd(directory)
    for name in ("neutron-l3-agent", "neutron-dhcp-agent"):
        lab.add_unit(f"{name}.service", STAND_IN_UNIT.format(name=name, log=directory / f"{name}.log"))
    lab.start()
    yield lab
    lab.stop()


@pytest.fixture
def engine(systemd, registry, tmp_path):
    return Engine(registry, Context(root=tmp_path, systemctl=tuple(systemd.systemctl)))


def starts(systemd, name) -> int:
    log = systemd.directory / f"{name}.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def unit_state(systemd, name) -> tuple[str, str]:
    import subprocess
    out = subprocess.run([*systemd.systemctl, "show", name, "-p", "ActiveState,UnitFileState"],
                         capture_output=True, text=True).stdout
    values = dict(line.split("=", 1) for line in out.splitlines())
    return values["ActiveState"], values["UnitFileState"]


def invocation_id(systemd, name) -> str:
    """systemd's id of the unit's current run: a new one at each start."""
    import subprocess
    out = subprocess.run([*systemd.systemctl, "show", name, "-p", "InvocationID", "--value"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out, f"{name} has no invocation: not running"
    return out


L3 = {"id": "l3", "driver": "service", "name": "neutron-l3-agent", "state": "running", "enabled": True}


def test_started_enabled_then_in_sync_then_stopped_and_disabled(systemd, engine):
    assert details(reconcile(engine, L3, dry_run=True)["l3"]) == ["state: inactive → running",
                                                                  "enabled: disabled → true"]
    assert reconcile(engine, L3)["l3"].status is Status.CHANGED
    assert unit_state(systemd, "neutron-l3-agent.service") == ("active", "enabled")
    assert not Path("/etc/systemd/system/multi-user.target.wants/neutron-l3-agent.service").exists()  # host untouched
    assert reconcile(engine, L3)["l3"].status is Status.IN_SYNC
    stopped = {**L3, "state": "stopped", "enabled": False}
    assert reconcile(engine, stopped)["l3"].status is Status.CHANGED
    assert unit_state(systemd, "neutron-l3-agent.service") == ("inactive", "disabled")


def test_a_changed_file_restarts_its_service_once(systemd, engine, tmp_path):
    dhcp = {"id": "dhcp-agent", "driver": "service", "name": "neutron-dhcp-agent"}
    files = [{"id": f"conf{i}", "driver": "file", "path": f"/etc/neutron/dhcp{i}.conf", "content": "a\n",
              "notify": ["dhcp-agent"]} for i in range(2)]
    reconcile(engine, dhcp)
    # the unit logs its start as it starts: counted once that line is there (a whole run once read 0, then 2)
    before = wait_until(lambda: starts(systemd, "neutron-dhcp-agent"), 10, "the first start logged")
    started = invocation_id(systemd, "neutron-dhcp-agent.service")
    results = reconcile(engine, dhcp, *files)
    assert results["dhcp-agent"].notified == ("restarted (notified by 'conf0', 'conf1')",)
    wait_until(lambda: starts(systemd, "neutron-dhcp-agent") == before + 1, timeout=10)  # the unit logs as it starts
    invocation = invocation_id(systemd, "neutron-dhcp-agent.service")
    assert invocation != started  # the restart shows as a new invocation
    results = reconcile(engine, dhcp, *files)  # nothing changed: no restart
    assert not results["dhcp-agent"].notified
    # systemctl restart returns once the unit started again, with a new invocation: the same one now proves
    # that this reconcile restarted nothing, without waiting for a log line that should not come.
    assert invocation_id(systemd, "neutron-dhcp-agent.service") == invocation
    assert starts(systemd, "neutron-dhcp-agent") == before + 1  # two changes made one restart, and no more


def test_unknown_unit_and_bad_input(engine):
    missing = reconcile(engine, {**L3, "name": "neutron-nonexistent"})["l3"]
    assert missing.status is Status.FAILED and missing.error == "unit neutron-nonexistent.service not found on this node"
    with pytest.raises(InvalidDocument, match="field 'name' must be a systemd unit name"):
        reconcile(engine, {**L3, "name": "bad name"})
    with pytest.raises(InvalidDocument, match="field 'state' must be one of running, stopped"):
        reconcile(engine, {**L3, "state": "up"})
