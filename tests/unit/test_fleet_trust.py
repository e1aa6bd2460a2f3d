"""Trust beyond the signature, on the coordinator's side: replays, signed replies, documents encrypted per
node and at rest, refusals aggregated, host names, revoke and forget, key rotation (real SQLite, no broker)."""

from __future__ import annotations

import itertools
import json
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.fleet import enrolment, rotation
from nodeagent.fleet.coordinator import Coordinator
from nodeagent.wire import box, messages, trust
from nodeagent.wire.protocol import Rejection
from nodeagent.wire.refusals import RefusalLog
from tests.conftest import set_up_coordinator

SECRET = "s3cret-rabbit-pass"
DOCUMENT = {"resources": [{"id": "conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
                           "settings": {"DEFAULT": {"transport_url": f"rabbit://openstack:{SECRET}@controller"}},
                           "sensitive": ["DEFAULT.transport_url"]}]}
_sequence = itertools.count(1)


class Node:
    """What an agent holds: a signing key, an encryption key, and its sequence."""

    def __init__(self, name: str = "n1"):
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        self.box = box.X25519PrivateKey.generate()

    def message(self, seq: int | None = None, **extra) -> dict:
        payload = {"node": self.name, "status": {"generation": 0}, "events": [],
                   "seq": next(_sequence) if seq is None else seq,
                   "box_key": box.public_text(self.box.public_key()), **extra}
        return trust.seal(payload, self.key)

    def fetch(self) -> dict:
        """A pull of its document: a request, not a report."""
        return trust.seal(messages.Request(node=self.name, seq=next(_sequence),
                                           box_key=box.public_text(self.box.public_key())).to_dict(), self.key)


@pytest.fixture
def coordinator(tmp_path):
    return set_up_coordinator(tmp_path, "auto_accept = true\nrefusal_window = 60\n")


def kinds(coordinator, pattern="*") -> list[str]:
    return [e.type for e in coordinator.inventory.events(kind=pattern)]


def test_a_replayed_report_is_refused_and_recorded(coordinator):
    node = Node()
    sealed = node.message()
    assert coordinator.reports.report_state(sealed).status == "new"
    assert coordinator.reports.report_state(node.message()).status == "alive"
    answer = coordinator.reports.report_state(sealed)  # sniffed and sent again
    assert answer.status == "refused" and answer.reason.startswith("replayed: sequence")
    assert kinds(coordinator, "report.refused") == ["report.refused"]
    unsequenced = trust.seal({"node": "n1", "status": {"generation": 7}, "events": []}, node.key)
    assert coordinator.reports.report_state(unsequenced).reason == "no sequence number (replay protection)"
    assert coordinator.inventory.node("n1").observed_generation == 0


def test_a_replayed_fetch_is_refused(coordinator):
    node = Node()
    coordinator.reports.report_state(node.message())
    coordinator.desired.set_state("n1", DOCUMENT, push=False)
    fetch = node.fetch()
    assert coordinator.reports.fetch_state(fetch) is not None
    assert isinstance(coordinator.reports.fetch_state(fetch), Rejection)  # unsigned when sent
    assert coordinator.refusals._open  # recorded (the first of its window at once)
    assert kinds(coordinator, "fetch.refused") == ["fetch.refused"]


def test_replies_are_signed_and_name_the_request(coordinator):
    node = Node()
    request = node.message(seq=41)
    reply = trust.unseal(coordinator.channel.reply(request, coordinator.reports.report_state(request).to_dict()),
                         coordinator.channel.key.public_key())
    assert (reply["kind"], reply["node"], reply["request"], reply["answer"]["status"]) == (
        "reply", "n1", trust.digest(request), "new")


def test_documents_travel_encrypted_for_their_node_only(coordinator):
    node, other = Node(), Node("n2")
    coordinator.reports.report_state(node.message())
    coordinator.reports.report_state(other.message())
    coordinator.desired.set_state("n1", DOCUMENT, push=False)
    sealed = coordinator.reports.fetch_state(node.fetch())
    assert SECRET not in json.dumps(sealed)
    payload = trust.unseal(sealed, coordinator.channel.key.public_key())
    document = box.decrypt(node.box, payload["encrypted"], b"n1:1")
    assert SECRET in json.dumps(document) and document["generation"] == 1
    with pytest.raises(trust.Refused, match="not encrypted for this node's key"):
        box.decrypt(other.box, payload["encrypted"], b"n1:1")
    with pytest.raises(trust.Refused):  # the same ciphertext passed off as another generation
        box.decrypt(node.box, payload["encrypted"], b"n1:2")


def test_secrets_and_documents_are_encrypted_at_rest_and_survive_a_rotation(coordinator, tmp_path):
    node = Node()
    coordinator.reports.report_state(node.message())
    coordinator.settings.set_secret("RABBIT_PASS", SECRET)
    coordinator.desired.set_state("n1", DOCUMENT, push=False)
    database = tmp_path / "state/coordinator.db"

    def stored() -> str:
        with sqlite3.connect(database) as connection:
            rows = connection.execute("SELECT value FROM secrets").fetchall() + \
                connection.execute("SELECT body FROM documents").fetchall()
        return json.dumps(rows)
    before = stored()
    assert SECRET not in before and before.count("nasealed:v1:") == 2
    old_public = trust.public_text(coordinator.channel.key.public_key())
    assert rotation.rotate(coordinator.channel, coordinator.vault, coordinator.inventory) == 2
    after = stored()
    assert SECRET not in after and after.count("nasealed:v1:") == 2
    assert {v.split(":")[2] for v in json.loads(after) for v in v} != {v.split(":")[2] for v in json.loads(before)
                                                                       for v in v}
    assert len(coordinator.vault.keys) == 1
    again = Coordinator(coordinator.conf)  # a new process: the key file and the database agree
    assert again.inventory.secrets() == {"RABBIT_PASS": SECRET}
    assert SECRET in json.dumps(again.inventory.document("n1").body)
    # The new signing key signs; the old one endorses it, so agents trusting the old key follow.
    sealed = again.reports.fetch_state(node.fetch())
    assert sealed["key"] != old_public
    assert trust.endorses(trust.public_from_text(old_public), sealed["endorsement"], sealed["key"], "rotate")
    assert rotation.retire_previous(again.channel, again.inventory) and "endorsement" not in again.reports.fetch_state(node.fetch())


def test_a_rotation_reseals_every_document_batch_by_batch(coordinator, tmp_path):
    """More documents than one flush re-seals: every one is sealed under the new key, and reads back."""
    from nodeagent.fleet.inventory import StateDocument

    coordinator.reports.report_state(Node().message())
    count = rotation.BATCH * 2 + 1
    with coordinator.inventory.session() as session:
        session.add_all(StateDocument(node="n1", generation=number, body={**DOCUMENT, "generation": number})
                        for number in range(1, count + 1))

    def keys() -> set[str]:
        with sqlite3.connect(tmp_path / "state/coordinator.db") as connection:
            return {row[0].split(":")[2] for row in connection.execute("SELECT body FROM documents")}
    before = keys()
    assert rotation.rotate(coordinator.channel, coordinator.vault, coordinator.inventory) == count
    assert len(keys()) == 1 and keys().isdisjoint(before)
    again = Coordinator(coordinator.conf)  # the old key is gone from the file: each reads back with the new one
    with again.inventory.session() as session:
        assert sorted(d.body["generation"] for d in session.query(StateDocument)) == list(range(1, count + 1))


def test_a_node_rekeys_with_its_old_keys_endorsement_only(coordinator):
    node = Node()
    coordinator.reports.report_state(node.message())
    old = node.key
    node.key = Ed25519PrivateKey.generate()
    assert coordinator.reports.report_state(node.message()).reason == \
        "signed with a key other than the node's accepted key"
    new_public = trust.public_text(node.key.public_key())
    forged = trust.endorse(Ed25519PrivateKey.generate(), new_public, "rekey")
    assert coordinator.reports.report_state(node.message(rekey=forged)).status == "refused"
    assert coordinator.reports.report_state(node.message(rekey=trust.endorse(old, new_public, "rekey"))).status == "alive"
    assert coordinator.inventory.node("n1").public_key == new_public
    assert "node.rekeyed" in kinds(coordinator)


@pytest.mark.parametrize("name, valid", [
    ("network1", True), ("compute-01.example.org", True), ("a" * 63, True), ("a" * 64, False),
    (".".join(["a" * 63] * 4), False), ("-lead", False), ("trail-", False), ("new\nline", False),
    ("space ", False), ("", False), ("under_score", False), ("x" * 100_000, False), (42, False)])
def test_host_names_follow_rfc_1123(name, valid):
    assert enrolment.valid_host(name) is valid


def test_invalid_names_never_enrol_and_a_flood_of_refusals_makes_two_events(coordinator):
    for number in range(1000):
        forger = Node(f"evil {number}\n" + "x" * 1000)
        assert coordinator.reports.report_state(forger.message()).status == "refused"
    assert coordinator.inventory.nodes() == []
    assert kinds(coordinator) == ["report.refused"]
    coordinator.refusals.flush(force=True)
    events = coordinator.inventory.events()
    assert len(events) == 2 and "999 more refused" in events[1].detail
    assert all("\n" not in e.detail and len(e.detail) < 400 for e in events)


def test_refusal_log_one_event_per_source_and_window():
    now = [0.0]
    recorded = []
    log = RefusalLog(lambda *event: recorded.append(event), window=60, max_sources=3, clock=lambda: now[0])
    for _ in range(500):
        log.refuse("push: bad signature", "n1", "state.refused", "push: bad signature")
    for source in range(100):  # varying the claimed source does not get around it
        log.refuse(f"host{source}", None, "report.refused", "unknown node")
    assert len(recorded) == 4
    now[0] = 61
    log.flush()
    assert [r[2] for r in recorded[4:]] == ["499 more refused from push: bad signature within 60 s, the last: "
                                            "push: bad signature",
                                            "97 more refused from (other sources) within 60 s, the last: unknown node"]


def test_a_revoked_node_is_refused_gets_nothing_and_forget_lets_it_enrol_again(coordinator):
    node = Node()
    coordinator.reports.report_state(node.message())
    coordinator.desired.set_state("n1", DOCUMENT, push=False)
    enrolment.revoke(coordinator.inventory, "n1")
    assert coordinator.inventory.node("n1").public_key is None
    assert coordinator.reports.report_state(node.message()).reason.startswith("revoked")
    assert isinstance(coordinator.reports.fetch_state(node.fetch()), Rejection)
    with pytest.raises(ValueError, match="revoked"):
        coordinator.desired.set_state("n1", DOCUMENT, push=False)  # it gets nothing
    enrolment.forget(coordinator.inventory, "n1")
    assert coordinator.inventory.node("n1") is None and coordinator.inventory.document("n1") is None
    assert coordinator.reports.report_state(node.message()).status == "new"  # auto_accept here: enrolled afresh
    with pytest.raises(LookupError):
        enrolment.revoke(coordinator.inventory, "ghost")


def test_an_agents_answer_counts_only_signed_by_the_node_for_that_request(coordinator):
    node = Node()
    coordinator.reports.report_state(node.message())
    request, other = (coordinator.channel.seal_clear_document({"node": "n1", "generation": g, "resources": []})
                      for g in (1, 2))

    def answer(key, for_request, host="n1"):
        return trust.seal({"kind": "reply", "node": host, "request": trust.digest(for_request),
                           "answer": {"resources": []}}, key)
    assert coordinator.delivery.read_answer("n1", request, answer(node.key, request)) == {"resources": []}
    for forged, reason in ((answer(Ed25519PrivateKey.generate(), request), "bad signature"),
                           ({"resources": []}, "malformed message"),
                           (answer(node.key, other), "an answer to another request"),
                           (answer(node.key, request, host="n2"), "an answer to another request")):
        with pytest.raises(trust.Refused, match=reason):
            coordinator.delivery.read_answer("n1", request, forged)
    assert kinds(coordinator, "answer.refused") == ["answer.refused"]  # one event for the four
