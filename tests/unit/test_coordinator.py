"""The coordinator's decisions on reports and pulls, against a real SQLite inventory (no broker needed)."""

from __future__ import annotations

import itertools

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.wire import box, messages, trust
from nodeagent.wire.messages import ReportAnswer
from tests.conftest import set_up_coordinator

from nodeagent.cli import config
from nodeagent.fleet import enrolment
from nodeagent.fleet.coordinator import Coordinator, NotFound, NotSetUp


NODE_BOX = box.public_text(box.X25519PrivateKey.generate().public_key())


@pytest.fixture
def coordinator(tmp_path):
    return set_up_coordinator(tmp_path)


_sequence = itertools.count(1)


def report(key, node="n1", generation=0, **extra):
    """A node's report, with the next sequence number (a replay protection the coordinator checks)."""
    return trust.seal({"node": node, "status": {"generation": generation}, "events": [], "seq": next(_sequence),
                       "box_key": NODE_BOX, **extra}, key)


def fetch(key, node="n1"):
    """A pull of the node's document: a request, not a report."""
    return trust.seal(messages.Request(node=node, seq=next(_sequence), box_key=NODE_BOX).to_dict(), key)


def test_first_contact_is_pending_until_accepted(coordinator):
    key = Ed25519PrivateKey.generate()
    assert coordinator.reports.report_state(report(key)) == ReportAnswer(status="pending")
    assert coordinator.inventory.node("n1").enrolment == "pending"
    assert coordinator.reports.fetch_state(fetch(key)) is None
    enrolment.accept(coordinator.inventory, "n1")
    assert coordinator.reports.report_state(report(key)) == ReportAnswer(status="new", desired_generation=0)
    assert coordinator.reports.report_state(report(key)) == ReportAnswer(status="alive", desired_generation=0)


def test_a_report_with_another_key_is_refused_and_recorded(coordinator):
    key = Ed25519PrivateKey.generate()
    coordinator.reports.report_state(report(key))
    enrolment.accept(coordinator.inventory, "n1")
    answer = coordinator.reports.report_state(report(Ed25519PrivateKey.generate(), generation=9))
    assert answer.status == "refused"
    assert coordinator.inventory.node("n1").observed_generation == 0
    assert [e.type for e in coordinator.inventory.events("n1", "report.*")] == ["report.refused"]


def test_a_forged_signature_with_the_right_key_id_is_refused(coordinator):
    key = Ed25519PrivateKey.generate()
    coordinator.reports.report_state(report(key))
    enrolment.accept(coordinator.inventory, "n1")
    forged = report(key)
    forged["payload"]["status"]["generation"] = 5
    assert coordinator.reports.report_state(forged).status == "refused"


def test_set_state_bumps_the_generation_and_fetch_returns_it_signed(coordinator):
    key = Ed25519PrivateKey.generate()
    coordinator.reports.report_state(report(key))
    enrolment.accept(coordinator.inventory, "n1")
    document = {"resources": [{"id": "f", "driver": "file", "path": "/etc/neutron/f", "content": "x"}]}
    assert coordinator.desired.set_state("n1", document, push=False) == 1
    assert coordinator.desired.set_state("n1", document, push=False) == 2
    sealed = coordinator.reports.fetch_state(fetch(key))
    payload = trust.unseal(sealed, coordinator.channel.key.public_key())
    assert payload["generation"] == 2 and payload["node"] == "n1" and "document" not in payload
    with pytest.raises(ValueError, match="the document is for node 'n2', not 'n1'"):
        coordinator.desired.set_state("n1", {**document, "node": "n2"}, push=False)
    with pytest.raises(NotFound):
        coordinator.desired.set_state("ghost", document, push=False)


def test_silent_nodes_go_down_and_come_back_revived(coordinator):
    key = Ed25519PrivateKey.generate()
    coordinator.reports.report_state(report(key))
    enrolment.accept(coordinator.inventory, "n1")
    coordinator.reports.report_state(report(key))
    coordinator.liveness.down_time = -1  # any heartbeat is too old
    assert coordinator.liveness.check_down() == ["n1"]
    assert coordinator.inventory.node("n1").alive is False
    coordinator.liveness.down_time = 30
    assert coordinator.reports.report_state(report(key)).status == "revived"


def test_making_a_coordinator_touches_nothing_and_says_what_to_run(tmp_path):
    state = tmp_path / "state"
    conf_file = tmp_path / "coordinator.conf"
    conf_file.write_text(f"[coordinator]\nstate_dir = {state}\n")
    coordinator = Coordinator(config.make_conf([str(conf_file)]))
    with pytest.raises(NotSetUp, match=f"no coordinator inventory at {state / 'coordinator.db'}: run "
                                       "'nodeagentctl keygen'"):
        coordinator.inventory.events()
    with pytest.raises(NotSetUp, match=f"no signing key at {state / 'coordinator.key'}: run 'nodeagentctl keygen'"):
        coordinator.channel.public_key_text()
    assert not state.exists()  # no directory, key, database or at-rest key made by asking
    coordinator.set_up()
    assert sorted(p.name for p in state.iterdir() if not p.name.startswith("coordinator.db-")) == [
        "coordinator.db", "coordinator.key", "coordinator.pub", "locks", "secrets.key"]  # locks: several coordinators
    assert (state / "coordinator.key").stat().st_mode & 0o777 == 0o600
    assert coordinator.inventory.events() == [] and coordinator.inventory.nodes() == []
    key = coordinator.channel.public_key_text()
    coordinator.set_up()  # again: nothing is made anew
    assert Coordinator(coordinator.conf).channel.public_key_text() == key
