"""Every envelope of the protocol (wire/protocol.py), sealed by its constructor and read by its reader: the
untouched one reads, and each tampered field is refused with a reason naming what failed."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.wire import box, trust
from nodeagent.wire.messages import Report, Request
from nodeagent.wire.protocol import (REQUEST_MAX_AGE, CoordinatorChannel, Endorsement, Envelope, NodeChannel,
                                     Refused)

BODY = {"node": "n1", "generation": 3, "resources": []}


class Pair:
    """A coordinator's channel and node n1's channel that trusts it, each with keys in ``directory``."""

    def __init__(self, directory: Path):
        self.rotated: list[str] = []
        self.coordinator = CoordinatorChannel(directory / "coordinator.key", FileNotFoundError)
        self.coordinator.create_key()
        (directory / "coordinator.pub.trusted").write_text(self.coordinator.public_key_text() + "\n")
        self.node = NodeChannel("n1", directory / "state", directory / "state" / "node.key",
                                directory / "coordinator.pub.trusted", self.rotated.append)
        (directory / "state").mkdir(mode=0o700)
        self.node.open()
        self.node_public = trust.public_text(self.node.node_key.public_key())

    @property
    def box_key(self) -> str:
        return box.public_text(self.node.box_keys[0].public_key())

    def document(self) -> dict[str, Any]:
        return self.coordinator.seal_document("n1", dict(BODY), self.box_key)

    def resign(self, sealed: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """The payload changed by ``change`` and signed again by the coordinator (so the change itself is read)."""
        payload = copy.deepcopy(sealed["payload"])
        change(payload)
        return trust.seal(payload, self.coordinator.key)


@pytest.fixture
def pair(tmp_path):
    return Pair(tmp_path)


def tampered(sealed: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    sealed = copy.deepcopy(sealed)
    if field.startswith("payload."):
        sealed["payload"][field.split(".", 1)[1]] = value
    else:
        sealed[field] = value
    return sealed


# -- the envelope: payload, signature, key --------------------------------------------------------------
@pytest.mark.parametrize("field, value, reason", [
    ("payload", {"kind": "document", "node": "n1", "generation": 4}, "bad signature"),
    ("payload.generation", 99, "bad signature"),
    ("signature", "", "unsigned"),
    ("signature", "AAAA", "bad signature"),
])
def test_a_tampered_envelope_is_refused_naming_what_failed(pair, field, value, reason):
    sealed = pair.document()
    assert pair.node.open_document(sealed, held=-1) == BODY
    with pytest.raises(Refused, match=reason):
        pair.node.open_document(tampered(sealed, field, value), held=-1)


def test_the_key_an_envelope_presents_is_only_a_hint_to_the_node(pair):
    """The node checks against the key it trusts; a presented key counts only with the trusted key's endorsement."""
    sealed = tampered(pair.document(), "key", trust.public_text(Ed25519PrivateKey.generate().public_key()))
    assert pair.node.open_document(sealed, held=-1) == BODY and pair.rotated == []


@pytest.mark.parametrize("raw, reason", [(None, "malformed message"), ("text", "malformed message"),
                                         ({"signature": "x"}, "malformed message"),
                                         ({"payload": {}, "key": "k"}, "unsigned")])
def test_what_is_not_an_envelope_is_refused(raw, reason):
    with pytest.raises(Refused, match=reason):
        Envelope.read(raw)


# -- a document: kind, node, generation, encrypted, document, issued_at ----------------------------------
@pytest.mark.parametrize("change, reason", [
    (lambda p: p.update(kind="reply"), "not a document"),
    (lambda p: p.update(node="n2"), "meant for node 'n2', this is 'n1'"),
    (lambda p: p.update(generation=4), "cannot decrypt"),  # the ciphertext is bound to node and generation
    (lambda p: p["encrypted"].update(data=p["encrypted"]["data"][:-4] + "AAAA"), "cannot decrypt"),
    (lambda p: p.update(encrypted="not a box"), "malformed encrypted document"),
    (lambda p: (p.pop("encrypted"), p.update(document=["not", "a", "document"])), "not a document"),
    (lambda p: (p.pop("encrypted"), p.update(document={**BODY, "node": "n2"})), "meant for node 'n2'"),
])
def test_a_document_with_a_tampered_field_is_refused_naming_it(pair, change, reason):
    with pytest.raises(Refused, match=reason):
        pair.node.open_document(pair.resign(pair.document(), change), held=-1)


def test_a_document_older_than_the_one_held_is_refused(pair):
    with pytest.raises(Refused, match="stale: generation 3 is older than the generation 4 held"):
        pair.node.open_document(pair.document(), held=4)
    with pytest.raises(Refused, match="stale: generation 3"):
        pair.node.open_document(pair.document(), held=3, allow_same=False)
    assert pair.node.open_document(pair.document(), held=3)["generation"] == 3


@pytest.mark.parametrize("issued_at, reason", [("too old", "request too old"),
                                               ("now", "malformed request: issued_at is 'now'"),
                                               (float("nan"), "malformed request: issued_at is nan")])
def test_a_request_with_a_tampered_issued_at_is_refused(pair, issued_at, reason):
    assert pair.node.open_request(pair.document())["kind"] == "document"
    if issued_at == "too old":  # made here: a parameter's id must be the same in every test process
        issued_at = time.time() - REQUEST_MAX_AGE - 5
    with pytest.raises(Refused, match=reason):
        pair.node.open_request(pair.resign(pair.document(), lambda p: p.update(issued_at=issued_at)))


# -- a node's request: node, seq, box_key, rekey, key ----------------------------------------------------
def test_a_nodes_request_reads_with_its_accepted_key_and_enrols_at_first_contact(pair):
    sealed = pair.node.sign_request(Request(node="n1", seq=0)).to_dict()
    first = CoordinatorChannel.read_request(sealed, None)
    assert (first.host, first.enrolled, first.key, first.box_key) == ("n1", True, pair.node_public, pair.box_key)
    again = CoordinatorChannel.read_request(sealed, pair.node_public)
    assert not again.enrolled and again.check_fresh(0) == again.seq
    with pytest.raises(Refused, match="unknown node"):
        CoordinatorChannel.read_request(sealed, None, enrol=False)


@pytest.mark.parametrize("field, value, reason", [
    ("payload.node", "n2", "bad signature"),
    ("payload.seq", 1, "bad signature"),
    ("payload.node", "not a host!", "a node name that is not a host name"),
    ("key", "another key", "bad signature"),
    ("signature", "AAAA", "bad signature"),
])
def test_a_nodes_request_with_a_tampered_field_is_refused_naming_it(pair, field, value, reason):
    sealed = pair.node.sign_request(Report(node="n1", seq=0)).to_dict()
    if value == "another key":  # made here: a parameter's id must be the same in every test process
        value = trust.public_text(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(Refused, match=reason):
        CoordinatorChannel.read_request(tampered(sealed, field, value), pair.node_public)


def test_a_replayed_or_unsequenced_request_and_a_bad_box_key_are_refused(pair):
    request = CoordinatorChannel.read_request(pair.node.sign_request(Request(node="n1", seq=0)).to_dict(),
                                              pair.node_public)
    with pytest.raises(Refused, match=f"replayed: sequence {request.seq} is not above {request.seq}"):
        request.check_fresh(request.seq)
    key = pair.node.node_key
    for payload, reason in (({"node": "n1"}, "no sequence number"),
                            ({"node": "n1", "seq": True}, "no sequence number"),
                            ({"node": "n1", "seq": 5, "box_key": "nope"}, "not an X25519 public key")):
        read = CoordinatorChannel.read_request(trust.seal(payload, key), pair.node_public)
        with pytest.raises(Refused, match=reason):
            read.check_fresh(0)
            _ = read.box_key


# -- the rekey endorsement: a node's old key vouches for its new one ------------------------------------
def test_a_rekey_counts_only_endorsed_by_the_accepted_key_for_that_purpose(pair):
    old = pair.node.node_key
    trust.rotate_key(pair.node.node_key_path)
    pair.node.open()
    assert pair.node.rekeying
    sealed = pair.node.sign_request(Request(node="n1", seq=0)).to_dict()
    read = CoordinatorChannel.read_request(sealed, trust.public_text(old.public_key()))
    assert read.rekeyed and read.key == trust.public_text(pair.node.node_key.public_key())
    new = sealed["key"]
    for endorsement in (Endorsement.make(Ed25519PrivateKey.generate(), new, "rekey"),  # another key
                        Endorsement.make(old, new, "rotate"),  # the other purpose
                        Endorsement.make(old, trust.public_text(Ed25519PrivateKey.generate().public_key()),
                                         "rekey")):  # for another new key
        forged = trust.seal({**sealed["payload"], "rekey": endorsement.to_dict()}, pair.node.node_key)
        with pytest.raises(Refused, match="signed with a key other than the node's accepted key"):
            CoordinatorChannel.read_request(forged, trust.public_text(old.public_key()))
    pair.node.key_taken()
    assert not pair.node.rekeying


# -- the rotation endorsement: the coordinator's old key vouches for its new one ------------------------
def test_a_rotated_coordinator_key_is_followed_only_when_the_trusted_key_endorses_it(pair):
    pair.coordinator.rotate_key()
    sealed = pair.document()
    assert "endorsement" in sealed
    for field, value in (("endorsement", None),
                         ("endorsement", Endorsement.make(Ed25519PrivateKey.generate(), sealed["key"],
                                                          "rotate").to_dict()),
                         ("endorsement", {**sealed["endorsement"], "signature": "AAAA"})):
        with pytest.raises(Refused, match="bad signature"):
            pair.node.open_document(tampered(sealed, field, value), held=-1)
    assert pair.rotated == []
    assert pair.node.open_document(sealed, held=-1) == BODY
    assert pair.rotated == [sealed["key"]]
    assert pair.node.coordinator_key() == trust.public_from_text(sealed["key"])  # trusted from now on
    assert pair.coordinator.retire_previous_key() and "endorsement" not in pair.document()


# -- replies, bound to the digest of their request, both ways --------------------------------------------
def test_the_coordinators_reply_is_bound_to_the_nodes_request(pair):
    request = pair.node.sign_request(Request(node="n1", seq=0))
    reply = pair.coordinator.reply(request.to_dict(), {"status": "alive"})
    assert pair.node.read_reply(reply, request) == {"status": "alive"}
    other = pair.node.sign_request(Request(node="n1", seq=0))
    for change, reason in ((lambda p: p.update(kind="document"), "not a reply"),
                           (lambda p: p.update(node="n2"), "for node 'n2'"),
                           (lambda p: p.update(request=trust.digest(other.to_dict())), "names another request")):
        with pytest.raises(Refused, match=reason):
            pair.node.read_reply(pair.resign(reply, change), request)
    with pytest.raises(Refused, match="names another request"):
        pair.node.read_reply(reply, other)
    with pytest.raises(Refused, match="bad signature"):
        pair.node.read_reply(tampered(reply, "payload.answer", {"status": "refused"}), request)


def test_the_nodes_reply_is_bound_to_the_coordinators_request(pair):
    request = pair.document()
    reply = pair.node.reply(request, {"resources": []})
    assert CoordinatorChannel.read_reply(reply, "n1", pair.node_public, request) == {"resources": []}
    node_key = pair.node.node_key
    for payload, reason in (({**reply["payload"], "kind": "plan"}, "not a reply"),
                            ({**reply["payload"], "node": "n2"}, "for node 'n2'"),
                            ({**reply["payload"], "request": trust.digest(pair.document())}, "names another request")):
        with pytest.raises(Refused, match=reason):
            CoordinatorChannel.read_reply(trust.seal(payload, node_key), "n1", pair.node_public, request)
    with pytest.raises(Refused, match="bad signature"):
        CoordinatorChannel.read_reply(tampered(reply, "payload.answer", {}), "n1", pair.node_public, request)
