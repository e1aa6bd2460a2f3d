"""Broker outages: enforcement goes on at its usual pace, and every drift event arrives once afterwards.

The fleet reaches the shared RabbitMQ through a relay of its own that the test cuts
(closing every connection, refusing new ones), so the host's broker keeps serving others.
"""

from __future__ import annotations

import json
import os

import pytest
import yaml

from nodeagent.testing.lab import Fleet
from nodeagent.testing.waiting import wait_until
from tests.relay import Relay

DOCUMENT = {"resources": [
    {"id": "neutron-conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
     "settings": {"DEFAULT": {"core_plugin": "ml2"}}},
    {"id": "dnsmasq", "driver": "file", "path": "/etc/neutron/dnsmasq-neutron.conf",
     "content": "dhcp-option-force=26,1454\n"},
]}


@pytest.fixture
def fleet(tmp_path):
    relay = Relay()
    fleet = Fleet(tmp_path, transport_url=relay.url(), report_interval=1, auto_accept=True)
    fleet.relay = relay
    try:
        fleet.add_node("cut1", [])
        (tmp_path / "state.yaml").write_text(yaml.safe_dump(DOCUMENT))
        fleet.start("coordinator")
        fleet.start("cut1")
        wait_until(lambda: "cut1" in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout, timeout=30)
        fleet.ctl("node", "set-state", "cut1", str(tmp_path / "state.yaml"))
        wait_until(lambda: "converged 1/1" in " ".join(
            fleet.ctl("node", "list", "-f", "value", "-c", "State", "-c", "Generation").stdout.split()), timeout=30)
        yield fleet
    finally:
        relay.close()
        fleet.close()


def edit(path, old: str, new: str) -> None:
    """Edit as most editors save: a whole new file renamed over the old one. An in-place rewrite would let a
    reconcile that happens to run between its truncate and its write see half a file (and refuse it as edited
    while being corrected), which this test is not about."""
    temporary = path.with_name(path.name + ".edit")
    temporary.write_text(path.read_text().replace(old, new))
    os.replace(temporary, path)


def drift(fleet) -> list[dict]:
    return json.loads(fleet.ctl("drift", "list", "-f", "json", "--node", "cut1").stdout)


def test_drift_is_corrected_during_an_outage_and_each_event_arrives_once(fleet):
    conf = fleet.directory / "cut1/root/etc/neutron/neutron.conf"
    spool = fleet.directory / "cut1/state/spool"
    # A first drift while the broker is there: the agent's notifier now holds a connection, which it
    # used to retry forever once the broker went away.
    edit(conf, "core_plugin = ml2", "core_plugin = edit0")
    wait_until(lambda: drift(fleet), timeout=10)
    fleet.relay.cut()
    try:
        for number in range(1, 4):
            # Each edit waits for the previous notifications and reports to be stuck on the dead broker:
            # the second one used to stay uncorrected for as long as the outage lasted.
            edit(conf, "core_plugin = ml2", f"core_plugin = edit{number}")
            wait_until(lambda: "core_plugin = ml2" in conf.read_text(), timeout=5)
            wait_until(lambda: len(list(spool.glob("*.json"))) >= number, timeout=5)
    finally:
        fleet.relay.restore()
    wait_until(lambda: not list(spool.glob("*.json")), timeout=60)
    records = drift(fleet)
    assert [(r["Resource"], r["State"]) for r in records] == [("neutron-conf", "corrected")] * 4
    found = [r["Changes"][0] for r in records]
    assert found == [f"DEFAULT.core_plugin: found edit{n}, expected ml2" for n in range(4)]
