"""First contacts are bounded and host names compare as DNS compares them, against the real coordinator process
on the real RabbitMQ (issue #23, item 2: 300 made-up nodes enrolled in 44 s with 301 events, and ``RELNODE1``
enrolled beside the accepted ``relnode1``)."""

from __future__ import annotations

import itertools
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.testing.lab import Fleet
from nodeagent.wire import rpc as messaging, trust
from tests.functional.test_security import events
from tests.functional.test_security_answers import served

_sequence = itertools.count(1)


def first_contact(api: messaging.CoordinatorAPI, host: str, key: Ed25519PrivateKey | None = None) -> dict:
    key = key or Ed25519PrivateKey.generate()
    return api.report_state(trust.seal({"node": host, "seq": next(_sequence), "status": {"generation": 0}}, key))


@pytest.fixture
def fleet(request, tmp_path):
    fleet = Fleet(tmp_path, auto_accept=request.param.get("auto_accept", False),
                  coordinator_options={k: v for k, v in request.param.items() if k != "auto_accept"})
    with served(fleet) as served_fleet:
        yield served_fleet


def hosts(fleet: Fleet) -> list[str]:
    return sorted(row["Host"] for row in json.loads(fleet.ctl("node", "list", "-f", "json").stdout))


@pytest.mark.parametrize("fleet, enrolled, limit", [
    ({"max_pending_nodes": 5}, 5, "5 nodes already wait for an operator (max_pending_nodes)"),
    ({"enrolments_per_minute": 4}, 4, "4 new nodes a minute (enrolments_per_minute)"),
], indirect=["fleet"], ids=["pending cap", "rate"])
def test_made_up_nodes_enrol_up_to_the_cap_and_the_rate_with_one_event_for_the_rest(fleet, enrolled, limit):
    fleet, api = fleet
    answers = [first_contact(api, f"madeup{number}") for number in range(30)]
    assert len(hosts(fleet)) == enrolled
    rejections = [a for a in answers if a.get("kind") == "rejection"]
    assert len(rejections) == 30 - enrolled and all("signature" not in a for a in rejections)
    assert rejections[0]["reason"] == f"enrolment limited: {limit}"
    limited = events(fleet, "--type", "enrolment.limited")
    assert [e["Detail"] for e in limited] == [f"enrolment limited: {limit}"]  # the rest counted, not recorded
    assert len([e for e in events(fleet, "--type", "node.*") if e["Type"] in ("node.pending", "node.enrolled")]) \
        == enrolled
    assert not events(fleet, "--type", "report.refused")


@pytest.mark.parametrize("fleet", [{"auto_accept": True}], indirect=True)
def test_host_names_fold_case_as_dns_does(fleet):
    fleet, api = fleet
    owner = Ed25519PrivateKey.generate()
    assert first_contact(api, "relnode1", owner)["payload"]["answer"]["status"] == "new"
    answer = first_contact(api, "RELNODE1")  # another key in another case: the same node, not a new one
    assert answer == {"kind": "rejection", "reason": "signed with a key other than the node's accepted key"}
    assert first_contact(api, "ReLnOdE1", owner)["payload"]["answer"]["status"] == "alive"  # its owner, any case
    assert first_contact(api, "Relnode2")["payload"]["node"] == "relnode2"
    assert hosts(fleet) == ["relnode1", "relnode2"]
