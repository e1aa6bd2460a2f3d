"""Key rotation and revocation, as an operator does them: ``nodeagentctl keygen --rotate``, an agent re-key
(``nodeagent keygen --rotate``), ``nodeagentctl node revoke`` and ``node forget``."""

from __future__ import annotations

import json

import pytest
import yaml

from nodeagent.testing.lab import Fleet
from tests.conftest import run_cli
from nodeagent.testing.waiting import wait_until


def document(marker: str) -> dict:
    return {"resources": [{"id": "marker", "driver": "file", "path": "/etc/neutron/marker.conf",
                           "content": f"{marker}\n"}]}


@pytest.fixture
def fleet(tmp_path):
    fleet = Fleet(tmp_path, report_interval=1, auto_accept=True)
    try:
        fleet.add_node("k1", [])
        fleet.start("coordinator")
        fleet.start("k1")
        wait_until(lambda: "k1" in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout, timeout=30)
        push(fleet, "one", 1)
        yield fleet
    finally:
        fleet.close()


def push(fleet: Fleet, marker: str, generation: int) -> None:
    path = fleet.directory / f"{marker}.yaml"
    path.write_text(yaml.safe_dump(document(marker)))
    fleet.ctl("node", "set-state", "k1", str(path))
    wait_until(lambda: (fleet.directory / "k1/root/etc/neutron/marker.conf").exists()
               and (fleet.directory / "k1/root/etc/neutron/marker.conf").read_text() == f"{marker}\n", timeout=30)
    wait_until(lambda: f"{generation}/{generation}" in fleet.ctl("node", "list", "-f", "value", "-c",
                                                                  "Generation").stdout, timeout=30)


def show(fleet: Fleet) -> dict:
    return json.loads(fleet.ctl("node", "show", "k1", "-f", "json").stdout)


def event_types(fleet: Fleet) -> list[str]:
    return [e["Type"] for e in json.loads(fleet.ctl("events", "-f", "json").stdout)]


def test_coordinator_rotation_agents_follow_the_endorsed_key(fleet):
    old = fleet.ctl("keygen").stdout.strip()
    fleet.ctl("secret", "set", "NEUTRON_PASS", stdin="kept\n")
    fleet.stop("coordinator")
    rotated = fleet.ctl("keygen", "--rotate")
    new = rotated.stdout.strip()
    assert new != old and "stored values re-encrypted" in rotated.stderr
    fleet.start("coordinator")
    push(fleet, "two", 2)  # signed by the new key, endorsed by the old one the agent trusts
    assert (fleet.directory / "k1/state/coordinator.pub").read_text().strip() == new
    assert "coordinator.rekeyed" in event_types(fleet)
    fleet.ctl("keygen", "--retire-previous")
    push(fleet, "three", 3)  # no endorsement any more: the agent trusts the new key itself
    assert json.loads(fleet.ctl("secret", "list", "-f", "json").stdout)[0]["Secret"] == "NEUTRON_PASS"


def test_an_agent_rekeys_and_the_coordinator_follows(fleet):
    before = show(fleet)["public_key"]
    fleet.stop("k1")
    done = run_cli("--config-file", str(fleet.agent_conf("k1")), "keygen", "--rotate")
    assert done.returncode == 0, done.stderr
    signing = done.stdout.split()[1]
    assert signing != before and done.stdout.split()[2] == "encryption"
    fleet.start("k1")
    wait_until(lambda: show(fleet)["public_key"] == signing, timeout=30)
    assert "node.rekeyed" in event_types(fleet)
    push(fleet, "two", 2)  # encrypted for the new encryption key
    wait_until(lambda: not (fleet.directory / "k1/state/node.key.previous").exists(), timeout=10)


def test_a_revoked_node_gets_nothing_and_a_forgotten_one_enrols_again(fleet):
    assert fleet.ctl("node", "revoke", "k1").stdout.strip() == "revoked k1"
    assert show(fleet)["state"] == "revoked" and show(fleet)["public_key"] is None
    wait_until(lambda: [e for e in json.loads(fleet.ctl("events", "-f", "json", "--type", "report.refused").stdout)
                        if e["Detail"].startswith("revoked")], timeout=10)
    (fleet.directory / "two.yaml").write_text(yaml.safe_dump(document("two")))
    refused = fleet.ctl("node", "set-state", "k1", str(fleet.directory / "two.yaml"), check=False)
    assert refused.returncode != 0 and "node 'k1' is revoked: it gets nothing" in refused.stderr
    fleet.stop("k1")
    assert (fleet.directory / "k1/root/etc/neutron/marker.conf").read_text() == "one\n"
    assert fleet.ctl("node", "forget", "k1").stdout.strip() == "forgot k1"
    assert "k1" not in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout
    fleet.start("k1")
    wait_until(lambda: "k1" in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout, timeout=30)
    assert show(fleet)["state"] in ("converged", "converging")  # enrolled afresh (auto_accept in this lab)
    missing = fleet.ctl("node", "revoke", "ghost", check=False)
    assert missing.returncode != 0 and "no node 'ghost'" in missing.stderr
