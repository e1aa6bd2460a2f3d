"""The coordinator's intake of typed messages (real SQLite, no broker): a drift event keeps its one shape from
the agent's report to the inventory and back; a report that does not read is refused, recorded, and stores
nothing."""

from __future__ import annotations

import itertools

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.fleet.reports import drift_event
from nodeagent.wire import box, messages, trust
from nodeagent.wire.protocol import Rejection
from tests.conftest import set_up_coordinator

_sequence = itertools.count(1)
BOX = box.public_text(box.X25519PrivateKey.generate().public_key())


@pytest.fixture
def coordinator(tmp_path):
    return set_up_coordinator(tmp_path, "auto_accept = true\n")


def drift(node: str = "n1") -> messages.DriftEvent:
    return messages.DriftEvent(
        node=node, resource="neutron-conf", driver="ini", generation=3, state="left", seen_at=100.5,
        changes=(messages.DriftChange(field="DEFAULT.transport_url", expected="***", found="***"),
                 messages.DriftChange(field="DEFAULT.debug", expected="true", found=None)), id=messages.new_id())


def sealed(key, **raw) -> dict:
    return trust.seal({"node": "n1", "box_key": BOX, **raw, "seq": next(_sequence)}, key)


def report(key, *events: messages.Event, **fields) -> dict:
    return sealed(key, **{**messages.Report(node="n1", seq=0, events=events).to_dict(), **fields})


def test_a_drift_event_keeps_its_shape_from_the_report_to_the_inventory(coordinator):
    key = Ed25519PrivateKey.generate()
    event = drift()
    spooled = messages.Event(id=event.id, type="drift.left", detail=event.describe(), drift=event)
    assert coordinator.reports.report_state(report(key, spooled)).status == "new"
    assert coordinator.reports.report_state(report(key, spooled)).status == "alive"  # resent: kept once
    records = coordinator.inventory.drift("n1")
    assert [drift_event(r) for r in records] == [event]
    assert drift_event(records[0]).lines() == ["DEFAULT.transport_url: found ***, expected ***",
                                               "DEFAULT.debug: found (absent), expected true"]
    assert [(e.type, e.detail) for e in coordinator.inventory.events("n1", "drift.*")] == [
        ("drift.left", "neutron-conf left: DEFAULT.transport_url: found ***, expected ***; "
                       "DEFAULT.debug: found (absent), expected true")]


@pytest.mark.parametrize("fields, reason", [
    ({"status": {"generation": "7"}}, "malformed report: status.generation is '7', not an integer"),
    ({"events": [{"id": "e1", "type": "drift.left", "detail": "x", "at": 1.0, "drift": {"state": "left"}}]},
     "malformed report: events[0].drift.node is missing"),
    ({"version": 2}, "malformed report: version is 2: this side reads report version 1 only"),
    ({"events": "all of them"}, "malformed report: events is 'all of them', not a list"),
])
def test_a_report_that_does_not_read_is_refused_recorded_and_stores_nothing(coordinator, fields, reason):
    key = Ed25519PrivateKey.generate()
    coordinator.reports.report_state(report(key))
    answer = coordinator.reports.report_state(report(key, **fields))
    assert answer == messages.ReportAnswer(status="refused", reason=reason)
    assert [e.detail for e in coordinator.inventory.events("n1", "report.refused")] == [reason]
    assert coordinator.inventory.node("n1").observed_generation == 0 and not coordinator.inventory.drift("n1")


def test_a_node_cannot_report_drift_in_another_nodes_name(coordinator):
    key = Ed25519PrivateKey.generate()
    coordinator.reports.report_state(report(key))
    other = drift("n2")
    answer = coordinator.reports.report_state(report(key, messages.Event(id=other.id, type="drift.left", detail="x",
                                                                 drift=other)))
    assert answer.status == "refused" and "events[0].drift.node is 'n2', not the reporting node 'n1'" in answer.reason
    assert not coordinator.inventory.drift()


def test_a_fetch_is_a_request_and_a_report_shaped_one_is_refused(coordinator):
    key = Ed25519PrivateKey.generate()
    coordinator.reports.report_state(report(key))
    coordinator.desired.set_state("n1", {"resources": [{"id": "f", "driver": "file", "path": "/etc/neutron/f",
                                                "content": "x"}]}, push=False)
    assert coordinator.reports.fetch_state(sealed(key)) is not None
    assert isinstance(coordinator.reports.fetch_state(report(key)), Rejection)
    assert [e.detail for e in coordinator.inventory.events("n1", "fetch.refused")] == [
        "malformed request: events is not a field of this message"]


def test_casts_are_offered_only_to_agents_that_say_what_they_hold_and_only_when_listened_for(coordinator):
    key = Ed25519PrivateKey.generate()
    coordinator.reports.report_state(report(key))
    assert not coordinator.reports.report_state(report(key, held=3)).cast  # no listener: nobody takes casts
    coordinator.reports.cast_heartbeats = True  # what serving with heartbeat_casts does
    assert coordinator.reports.report_state(report(key, held=3)).cast
    older = coordinator.reports.report_state(report(key))  # an agent before casts: it would refuse the field
    assert not older.cast and "cast" not in older.to_dict()
    assert messages.ReportAnswer.from_dict(coordinator.reports.report_state(report(key, held=3)).to_dict()).cast
