"""A compromised node's reports are bounded, against the real coordinator process on the real RabbitMQ (issue #23,
item 5: 20,000 events in one report, 1 MB details and newlines in event types were stored)."""

from __future__ import annotations

import json
import time

from nodeagent.fleet import reportbounds
from nodeagent.wire.messages import DriftChange, DriftEvent, Event, Report, new_id
from tests.functional.test_security import events
from tests.functional.test_security_answers import coordinator, node_channel  # noqa: F401 - the fixture

EVENTS = 2000


def test_a_reports_events_sizes_and_characters_are_bounded_and_the_cut_recorded_once(coordinator):
    fleet, api = coordinator
    channel = node_channel(fleet, "bigmouth")

    def send(report: Report) -> dict:
        sealed = channel.sign_request(report)
        return channel.read_reply(api.report_state(sealed.to_dict()), sealed)
    assert send(Report(node="bigmouth", seq=0))["status"] == "new"
    drift = DriftEvent(node="bigmouth", resource="conf\nforged", driver="ini", generation=1, state="left",
                       changes=tuple(DriftChange(field=f"k{n}", expected="x" * 10_000, found=None)
                                     for n in range(500)), seen_at=time.time(), error="e" * 1_000_000, id=new_id())
    flood = tuple(Event(id=new_id(), type="drift.left", detail=f"event {n}") for n in range(EVENTS))
    odd = (Event(id=new_id(), type="node.up\nforged: line", detail="d" * 1_000_000 + "\x1b[2J"),
           Event(id=drift.id, type="drift.left", detail="x", drift=drift))
    for _ in range(2):  # the second report is cut alike, and recorded with the first
        answer = send(Report(node="bigmouth", seq=0, events=odd + flood, facts={"blob": "f" * 2_000_000}))
        assert answer["status"] == "alive"
    stored = events(fleet, "--node", "bigmouth")
    assert len([e for e in stored if e["Type"] == "drift.left"]) <= reportbounds.MAX_EVENTS
    assert all("\n" not in e["Type"] and len(e["Detail"]) <= reportbounds.MAX_TEXT + 100 for e in stored)
    assert "node.up_forged:_line" in {e["Type"] for e in stored}
    assert not [e for e in stored if "\x1b" in e["Detail"]]
    truncated = [e["Detail"] for e in stored if e["Type"] == "report.truncated"]
    assert len(truncated) == 1 and f"{EVENTS + 2} events, {reportbounds.MAX_EVENTS} kept" in truncated[0]
    (record,) = json.loads(fleet.ctl("drift", "list", "-f", "json").stdout)
    assert len(record["Changes"]) <= (reportbounds.MAX_CHANGES + 1) * (reportbounds.MAX_TEXT + 100)
    shown = json.loads(fleet.ctl("node", "show", "bigmouth", "-f", "json").stdout)
    assert "f" * 1000 not in json.dumps(shown)  # facts past the bound are not kept
