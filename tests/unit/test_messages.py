"""The wire's typed messages: every one goes through to_dict/from_dict unchanged, and a malformed one is
refused naming the message and the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from nodeagent.kit.result import Change, ReconcileResult, ResourceResult, Status
from nodeagent.wire import messages, trust
from nodeagent.wire.messages import (AgentStatus, DriftChange, DriftEvent, Event, LocalView, Malformed, Report,
                                     ReportAnswer, Request, ResourceView)

TEXT = st.text(max_size=12)
NAME = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
NUMBER = st.floats(min_value=0, max_value=2e9, allow_nan=False)
INT = st.integers(-2 ** 40, 2 ** 40)
JSON = st.recursive(st.none() | st.booleans() | INT | TEXT,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)

changes = st.builds(DriftChange, field=NAME, expected=st.none() | TEXT, found=st.none() | TEXT)


def drifts_of(node):
    return st.builds(DriftEvent, node=node, resource=NAME, driver=NAME, generation=INT,
                     state=st.sampled_from([messages.CORRECTED, messages.LEFT, messages.CONTESTED, messages.FAILED]),
                     changes=st.lists(changes, max_size=3).map(tuple), seen_at=NUMBER,
                     fixed_at=st.none() | NUMBER, error=st.none() | TEXT, id=st.just(messages.new_id()))


def events_of(node):
    return st.builds(Event, id=st.just(messages.new_id()), type=NAME, detail=TEXT, at=NUMBER,
                     drift=st.none() | drifts_of(node))


drifts, events = drifts_of(NAME), events_of(NAME)
names = st.lists(NAME, max_size=3).map(tuple)
statuses = st.builds(AgentStatus, generation=INT, mode=st.none() | st.sampled_from(["enforce", "monitor"]),
                     counts=st.dictionaries(NAME, INT, max_size=3), failed=names, drifted=names, contested=names,
                     reconciled_at=st.none() | NUMBER, reconciled_generation=INT)
reports = NAME.flatmap(lambda node: st.builds(
    Report, node=st.just(node), seq=INT, sent_at=st.none() | NUMBER, box_key=st.none() | NAME,
    rekey=st.none() | st.dictionaries(TEXT, TEXT, max_size=2), status=statuses,
    health=st.dictionaries(TEXT, JSON, max_size=3), events=st.lists(events_of(st.just(node)), max_size=3).map(tuple),
    facts=st.none() | st.dictionaries(TEXT, JSON, max_size=3)))
views = st.builds(LocalView, node=NAME, generation=INT, counts=st.dictionaries(NAME, INT, max_size=3),
                  resources=st.lists(st.builds(ResourceView, id=NAME, driver=NAME, mode=NAME, status=NAME,
                                               backed_off=st.booleans()), max_size=3).map(tuple),
                  drift=st.lists(drifts, max_size=2).map(tuple))
answers = st.builds(ReportAnswer, status=st.sampled_from(["new", "alive", "revived", "pending", "refused"]),
                    desired_generation=st.none() | INT, reason=st.none() | TEXT)
requests = st.builds(Request, node=NAME, seq=INT, sent_at=st.none() | NUMBER)


@settings(max_examples=60, deadline=None)
@given(message=st.one_of(drifts, events, statuses, reports, views, answers, requests))
def test_every_message_survives_json_and_back(message):
    again = type(message).from_dict(json.loads(json.dumps(message.to_dict())))
    assert again == message


def test_a_drift_event_is_built_from_a_result_with_redacted_values():
    result = ResourceResult("neutron-conf", "ini", Status.CHANGED,
                            (Change("DEFAULT.transport_url", "rabbit://x:pw@c", "rabbit://y:pw@c").redacted(),
                             Change("DEFAULT.debug", None, "true")))
    event = DriftEvent.from_result("n1", 3, result, seen_at=10.0, contested=False)
    assert event.state == "corrected" and event.fixed_at is not None
    assert event.describe() == ("neutron-conf corrected: DEFAULT.transport_url: found ***, expected ***; "
                                "DEFAULT.debug: found (absent), expected true")
    assert "pw" not in json.dumps(event.to_dict())
    failed = DriftEvent.from_result("n1", 3, ResourceResult("s", "service", Status.FAILED, error="no unit"), 1.0,
                                    contested=False)
    assert failed.lines() == ["error: no unit"] and failed.describe() == "s failed: error: no unit"
    assert failed.outcome() == "failed: error: no unit"


def _report() -> dict:
    drift = DriftEvent(node="n1", resource="r", driver="file", generation=1, state="left", changes=(), seen_at=1.0,
                       id=messages.new_id())
    event = Event(id=drift.id, type="drift.left", detail=drift.describe(), drift=drift)
    return Report(node="n1", seq=5, events=(event,)).to_dict()


@pytest.mark.parametrize("change, where", [
    (lambda r: r.pop("node"), "report: node is missing"),
    (lambda r: r.update(seq="5"), "report: seq is '5', not an integer"),
    (lambda r: r.update(seq=True), "report: seq is True, not an integer"),
    (lambda r: r.update(version=2), "report: version is 2: this side reads report version 1 only"),
    (lambda r: r.update(extra=1), "report: extra is not a field of this message"),
    (lambda r: r["status"].update(generation=1.5), "report: status.generation is 1.5, not an integer"),
    (lambda r: r["status"].update(counts={"in_sync": "3"}), "report: status.counts.in_sync is '3', not an integer"),
    (lambda r: r.update(events={}), "report: events is {}, not a list"),
    (lambda r: r["events"][0].update(at=float("nan")), "report: events[0].at is nan, not a finite number"),
    (lambda r: r["events"][0].update(id="x" * 33), "report: events[0].id is 33 characters long, more than 32"),
    (lambda r: r["events"][0].pop("id"), "report: events[0].id is missing"),
    (lambda r: r["events"][0]["drift"].update(state="gone"),
     "report: events[0].drift.state is 'gone', not one of corrected, left, contested, failed"),
    (lambda r: r["events"][0]["drift"].update(changes=[{"field": "a", "expected": 1, "found": None}]),
     "report: events[0].drift.changes[0].expected is 1, not str"),
    (lambda r: r["events"][0]["drift"].update(version=9), "report: events[0].drift.version is 9"),
    (lambda r: r["events"][0]["drift"].update(node="n2"),
     "report: events[0].drift.node is 'n2', not the reporting node 'n1'"),
    (lambda r: r.update(health=[]), "report: health is [], not an object with text keys"),
])
def test_a_malformed_report_is_refused_naming_the_field(change, where):
    raw = _report()
    change(raw)
    with pytest.raises(Malformed) as caught:
        Report.from_dict(raw)
    assert str(caught.value).startswith(f"malformed {where}")
    assert isinstance(caught.value, trust.Refused)  # refused and recorded like a forged message


@pytest.mark.parametrize("junk", [None, [], "report", 3])
def test_a_message_that_is_not_an_object_is_refused(junk):
    with pytest.raises(Malformed, match="malformed report: the message is .*, not an object"):
        Report.from_dict(junk)


def test_a_message_without_a_version_is_read_as_version_1():
    """Events spooled before messages carried a version still go out after an upgrade."""
    raw = _report()
    del raw["version"], raw["events"][0]["version"]
    assert Report.from_dict(raw).events[0].type == "drift.left"


def test_status_json_is_a_local_view():
    view = LocalView(node="n1", generation=2, mode="enforce", counts={"in_sync": 2, "changed": 0},
                     resources=(ResourceView(id="r", driver="file", mode="enforce", status="in_sync"),))
    raw = view.to_dict()
    assert raw["node"] == "n1" and raw["generation"] == 2 and raw["resources"][0]["id"] == "r"  # flat, as before
    assert LocalView.from_dict(raw).line() == "generation 2: 2 in_sync"
    with pytest.raises(Malformed, match="malformed status.json: node is missing"):
        LocalView.from_dict({"generation": 1})


def test_an_answer_says_whether_the_report_was_taken():
    assert ReportAnswer(status="alive", desired_generation=1).taken
    assert not ReportAnswer(status="pending").taken and not ReportAnswer(status="refused", reason="x").taken
    with pytest.raises(Malformed, match="malformed report answer: status is 'maybe'"):
        ReportAnswer.from_dict({"status": "maybe"})


def test_a_plan_is_what_a_reconcile_result_tells_and_a_refusal_reads_as_one():
    result = ReconcileResult("n1", 4, True, (
        ResourceResult("conf", "ini", Status.PENDING, (Change("DEFAULT.debug", "false", "true"),), duration=0.01),
        ResourceResult("svc", "service", Status.SKIPPED, error="conf failed", notified=("restart",))), 1.0, 0.02)
    plan = messages.plan_or_refusal(json.loads(json.dumps(messages.Plan.of(result).to_dict())))
    assert isinstance(plan, messages.Plan) and (plan.node, plan.generation, plan.counts) == ("n1", 4, result.counts())
    assert [(r.id, r.status, r.error, r.notified) for r in plan.resources] == [
        ("conf", "pending", None, ()), ("svc", "skipped", "conf failed", ("restart",))]
    assert plan.resources[0].changes == (messages.PlannedChange(field="DEFAULT.debug", old="false", new="true"),)
    assert messages.plan_or_refusal({"refused": "request too old"}) == messages.Refusal(refused="request too old")
    with pytest.raises(Malformed, match=r"malformed plan: resources\[0\].status is 'maybe'"):
        messages.plan_or_refusal({**result.to_dict(), "resources": [{"id": "x", "driver": "ini", "status": "maybe"}]})


def test_a_field_added_later_is_sent_only_when_set_so_older_readers_read_the_message_as_before():
    plain = messages.ReportAnswer(status="alive", desired_generation=2)
    assert "cast" not in plain.to_dict()
    assert messages.ReportAnswer.from_dict(plain.to_dict()) == plain
    offered = messages.ReportAnswer(status="alive", desired_generation=2, cast=True)
    assert offered.to_dict()["cast"] is True and messages.ReportAnswer.from_dict(offered.to_dict()) == offered
