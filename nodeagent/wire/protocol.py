"""The protocol between a node and its coordinator: every envelope, how it is sealed, opened and bound.

An envelope on the wire is ``{"payload": {...}, "signature": "<b64>", "key": "<b64 public key>"}``, and
``"endorsement"`` while the coordinator rotates its key (``trust`` signs and checks). Its payloads:

* a **document** (coordinator → node): ``kind=document``, the node, the generation, the document
  ``encrypted`` for the node's key (or in clear, as a lab or local cache writes it), ``issued_at``;
* a **request** (node → coordinator): a ``messages.Request`` or ``Report`` with its sequence, the node's
  encryption key and, after a node re-keyed, the previous key's **rekey** endorsement of the new one;
* a **request** (coordinator → node): a document with ``issued_at``, fresh for ``REQUEST_MAX_AGE``;
* a **reply** (either way): ``kind=reply``, the node, ``request`` (the digest of the whole sealed request
  it answers: one binding in both directions) and the answer. The coordinator signs a reply only to a
  request whose signature verified and whose sequence was fresh: one signed reply per request;
* a **rejection** (coordinator → node): ``kind=rejection`` and a reason, never signed: the answer to a
  request the coordinator did not accept (its signature, its sequence, its node). Signing it would hand
  whoever sent that request an answer bearing the coordinator's signature; no node takes it as a reply.

Two channels are the only code that seals, signs, verifies or checks freshness: ``NodeChannel`` (the
agent's end: its keys, its sequence, its trust in the coordinator's key and the key's rotation) and
``CoordinatorChannel`` (the coordinator's end: its signing key, and each node's accepted key as the
inventory holds it). Every reader raises ``Refused`` naming what failed.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from nodeagent.kit import files
from nodeagent.kit.errors import preview
from nodeagent.document.model import NODE_PATTERN, fold_host
from nodeagent.wire import box, trust
from nodeagent.wire.messages import Request
from nodeagent.wire.sequence import Sequence
from nodeagent.wire.trust import Refused

REQUEST_MAX_AGE = 300  # seconds a signed request of the coordinator (a plan) stays valid

__all__ = ["CoordinatorChannel", "DocumentEnvelope", "Endorsement", "Envelope", "NodeChannel", "NodeRequest",
           "Refused", "Rejection", "Replayed", "Reply", "REQUEST_MAX_AGE", "box_key_paths"]


# -- values -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endorsement:
    """An old key's signature over a new public key: whoever trusts the old key may move to the new one.
    ``purpose`` keeps the two uses apart: ``rotate`` (the coordinator's key), ``rekey`` (a node's key)."""

    key: str
    signature: str

    @classmethod
    def make(cls, old: Ed25519PrivateKey, new_public: str, purpose: str) -> Endorsement:
        return cls(**trust.endorse(old, new_public, purpose))

    @classmethod
    def read(cls, raw: Any) -> Endorsement | None:
        """None when absent or not shaped like one (then it vouches for nothing)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("key"), str) \
                or not isinstance(raw.get("signature"), str):
            return None
        return cls(raw["key"], raw["signature"])

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "signature": self.signature}

    def vouches(self, trusted: Ed25519PublicKey, new_public: str, purpose: str) -> bool:
        return trust.endorses(trusted, self.to_dict(), new_public, purpose)


@dataclass(frozen=True)
class Envelope:
    """A signed payload as it travels: the signature covers the payload's canonical JSON."""

    payload: Any
    signature: str
    key: str
    endorsement: Endorsement | None = None

    @classmethod
    def sign(cls, payload: dict[str, Any], key: Ed25519PrivateKey,
             endorsement: Endorsement | None = None) -> Envelope:
        sealed = trust.seal(payload, key)
        return cls(sealed["payload"], sealed["signature"], sealed["key"], endorsement)

    @classmethod
    def read(cls, raw: Any) -> Envelope:
        """The envelope's parts, unverified; Refused when it is not even shaped like a signed message."""
        if not isinstance(raw, dict) or "payload" not in raw:
            raise Refused("malformed message")
        if not raw.get("signature"):
            raise Refused("unsigned")
        key = raw.get("key")
        return cls(raw["payload"], str(raw["signature"]), key if isinstance(key, str) else "",
                   Endorsement.read(raw.get("endorsement")))

    def to_dict(self) -> dict[str, Any]:
        wire = {"payload": self.payload, "signature": self.signature, "key": self.key}
        if self.endorsement is not None:
            wire["endorsement"] = self.endorsement.to_dict()
        return wire

    def verify(self, trusted: Ed25519PublicKey) -> dict[str, Any]:
        """The payload, if ``trusted`` signed it."""
        return trust.unseal({"payload": self.payload, "signature": self.signature}, trusted)

    def verify_with_presented_key(self) -> dict[str, Any]:
        """The payload, signed by the key the envelope presents: proves the sender holds that key."""
        return self.verify(trust.public_from_text(self.key))

    @property
    def sender(self) -> str | None:
        """The node the payload says it comes from (unverified), when it is a host name; folded as DNS folds
        it, so that ``RELNODE1`` is the node ``relnode1`` (its key, its sequence), never a second one."""
        host = self.payload.get("node") if isinstance(self.payload, dict) else None
        return fold_host(host) if isinstance(host, str) and re.fullmatch(NODE_PATTERN, host) else None


@dataclass(frozen=True)
class DocumentEnvelope:
    """A document's payload: for one node at one generation, encrypted to that node's key (or in clear)."""

    node: str | None
    generation: Any
    encrypted: Any = None
    document: Any = None
    issued_at: Any = None

    @classmethod
    def read(cls, payload: dict[str, Any]) -> DocumentEnvelope:
        if payload.get("kind") != "document":
            raise Refused("not a document")
        node = payload.get("node")
        return cls(node if isinstance(node, str) or node is None else str(node), payload.get("generation"),
                   payload.get("encrypted"), payload.get("document"), payload.get("issued_at"))

    def to_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"kind": "document", "node": self.node, "generation": self.generation}
        if self.encrypted is not None:
            payload["encrypted"] = self.encrypted
        if self.document is not None:
            payload["document"] = self.document
        if self.issued_at is not None:
            payload["issued_at"] = self.issued_at
        return payload

    @staticmethod
    def aad(node: str, generation: Any) -> bytes:
        """The associated data of the encryption: the ciphertext cannot pass as another node's or generation's."""
        return f"{node}:{generation}".encode()


@dataclass(frozen=True)
class Reply:
    """An answer, signed by the side that answers, bound to the digest of the request it answers."""

    node: str
    request: str
    answer: Any

    @classmethod
    def to(cls, request: Any, node: str | None, answer: Any) -> Reply:
        """The reply to ``request`` (the sealed request exactly as it travelled)."""
        return cls(node, trust.digest(request), answer)

    @classmethod
    def read(cls, payload: dict[str, Any], node: str, request: Any) -> Reply:
        """The reply to ``request`` from or for ``node``; Refused naming what does not match."""
        if payload.get("kind") != "reply":
            raise Refused("an answer to another request: not a reply")
        if payload.get("node") != node:
            raise Refused(f"an answer to another request: for node '{str(payload.get('node'))[:64]}'")
        if payload.get("request") != trust.digest(request):
            raise Refused("an answer to another request: it names another request")
        return cls(node, payload["request"], payload.get("answer"))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "reply", "node": self.node, "request": self.request, "answer": self.answer}


@dataclass(frozen=True)
class Rejection:
    """The coordinator's answer to a request it did not accept: unsigned, so that it proves nothing to anyone."""

    reason: str
    status = "refused"  # what a signed refusal of a report says too

    def to_dict(self) -> dict[str, str]:
        return {"kind": "rejection", "reason": self.reason}

    @classmethod
    def read(cls, raw: Any) -> Rejection | None:
        """The rejection ``raw`` is, or None when it is none."""
        if isinstance(raw, dict) and raw.get("kind") == "rejection" and "signature" not in raw:
            return cls(str(raw.get("reason"))[:200])
        return None


def _issued_at(payload: dict[str, Any]) -> float:
    issued_at = payload.get("issued_at", 0)
    if isinstance(issued_at, bool) or not isinstance(issued_at, (int, float)) or not math.isfinite(issued_at):
        raise Refused(f"malformed request: issued_at is {preview(issued_at)}")
    return float(issued_at)


def box_key_paths(state_dir: Path) -> list[Path]:
    """A node's encryption keys, the current one first (the previous one opens the cache after a re-key)."""
    return [state_dir / "node.box", state_dir / "node.box.previous"]


# -- the node's end -----------------------------------------------------------------------------------
class NodeChannel:
    """The agent's end of the protocol: this node's signing and encryption keys, its sequence, and its trust
    in the coordinator's key (a new coordinator key is trusted when the trusted one endorses it)."""

    def __init__(self, host: str, state_dir: Path, node_key_path: Path, coordinator_key_path: str | Path,
                 on_rotated: Callable[[str], None] = lambda new: None):
        self.host = fold_host(host)
        self.state_dir = state_dir
        self.node_key_path = node_key_path
        self.coordinator_key_path = coordinator_key_path
        self.on_rotated = on_rotated
        self.node_key: Ed25519PrivateKey | None = None
        self.box_keys: list[Any] = []
        self.sequence: Sequence | None = None

    def open(self) -> None:
        """Read (or make, on first use) the keys and the sequence."""
        self.node_key = trust.load_or_create_key(self.node_key_path)
        self.box_keys = [box.load_or_create_key(path) for path in box_key_paths(self.state_dir)
                         if path.exists() or path == self.state_dir / "node.box"]
        self.sequence = Sequence(self.state_dir / "sequence")

    def make_keys(self, rotate: bool = False) -> tuple[str, str]:
        """This node's key pairs, made unless there (``rotate``: new ones, the old signing key kept to vouch
        for the new one, the old encryption key to open the cache); their public halves."""
        current_box, previous_box = box_key_paths(self.state_dir)
        if rotate and self.node_key_path.exists():
            key = trust.rotate_key(self.node_key_path)
        else:
            key = trust.load_or_create_key(self.node_key_path)
        if rotate and current_box.exists():
            os.replace(current_box, previous_box)
        encryption = box.load_or_create_key(current_box)
        return trust.public_text(key.public_key()), box.public_text(encryption.public_key())

    @property
    def rotated_key_path(self) -> Path:
        return self.state_dir / "coordinator.pub"

    def coordinator_key(self) -> Ed25519PublicKey:
        """The configured key, or the one it endorsed when the coordinator rotated its key."""
        path = self.rotated_key_path if self.rotated_key_path.exists() else self.coordinator_key_path
        return trust.load_public_key(path)

    def _open(self, raw: Any) -> dict[str, Any]:
        """The payload of a message the coordinator signed, following an endorsed rotation of its key."""
        envelope = Envelope.read(raw)
        trusted = self.coordinator_key()
        try:
            return envelope.verify(trusted)
        except Refused:
            if envelope.endorsement is None or not envelope.endorsement.vouches(trusted, envelope.key, "rotate"):
                raise
        payload = envelope.verify_with_presented_key()
        files.write_private(self.rotated_key_path, (envelope.key + "\n").encode(), 0o644)
        self.on_rotated(envelope.key)
        return payload

    # documents and requests from the coordinator
    def open_document(self, raw: Any, held: int, allow_same: bool = True, max_age: float | None = None,
                      cached: bool = False) -> dict[str, Any]:
        """The document (a plain dict, not yet parsed) in a signed message, if it is for this node, not older
        than the generation ``held`` and signed within ``max_age`` seconds (None: any time). From the wire it
        must be encrypted: the coordinator encrypts every document for the node's key, which the node made
        before it first spoke, so one in clear is an old capture (a downgrade). Only the ``cached`` one, which
        a lab may seed before the node's first start, may be in clear."""
        payload = self._open(raw)
        sealed = DocumentEnvelope.read(payload)
        if max_age is not None and time.time() - _issued_at(payload) > max_age:
            raise Refused(f"too old: issued {time.time() - _issued_at(payload):.0f} s ago, document_max_age is "
                          f"{max_age:g} s (a captured push replayed?)")
        document = sealed.document
        if sealed.encrypted is not None:
            if sealed.node != self.host:
                raise Refused(f"meant for node '{str(sealed.node)[:64]}', this is '{self.host}'")
            document = self._decrypt(sealed.encrypted, DocumentEnvelope.aad(self.host, sealed.generation))
        if not isinstance(document, dict):
            raise Refused("not a document")
        if document.get("node") != self.host:
            raise Refused(f"meant for node '{str(document.get('node'))[:64]}', this is '{self.host}'")
        generation = document.get("generation")
        if isinstance(generation, int) and (generation < held or (generation == held and not allow_same)):
            raise Refused(f"stale: generation {generation} is older than the generation {held} held")
        if sealed.encrypted is None and not cached:
            raise Refused("in clear, and this node has an encryption key (a downgrade)")
        return document

    def open_request(self, raw: Any) -> dict[str, Any]:
        """The payload of a request the coordinator signed within the last ``REQUEST_MAX_AGE`` seconds."""
        payload = self._open(raw)
        if time.time() - _issued_at(payload) > REQUEST_MAX_AGE:
            raise Refused("request too old")
        return payload

    def _decrypt(self, encrypted: Any, aad: bytes) -> Any:
        error = Refused("no encryption key")
        for key in self.box_keys:
            try:
                return box.decrypt(key, encrypted, aad)
            except Refused as exc:
                error = exc
        raise error

    def reply(self, request: Any, answer: Any) -> dict[str, Any]:
        """An answer signed by this node for this very request: another consumer of its queue cannot forge it."""
        return Envelope.sign(Reply.to(request, self.host, answer).to_dict(), self.node_key).to_dict()

    # requests to the coordinator, and its replies
    @property
    def rekeying(self) -> bool:
        """This node made itself a new key that the coordinator has not taken yet."""
        return trust.previous_key_path(self.node_key_path).exists()

    def sign_request(self, request: Request) -> Envelope:
        """``request`` with the next sequence, this node's encryption key and, while re-keying, the previous
        key's endorsement of the new one; signed."""
        rekey = None
        if self.rekeying:
            previous = trust.load_private_key(trust.previous_key_path(self.node_key_path))
            rekey = Endorsement.make(previous, trust.public_text(self.node_key.public_key()), "rekey").to_dict()
        request = replace(request, seq=self.sequence.next(), rekey=rekey,
                          box_key=box.public_text(self.box_keys[0].public_key()))
        return Envelope.sign(request.to_dict(), self.node_key)

    def read_reply(self, raw: Any, request: Envelope) -> Any:
        """The coordinator's answer to ``request``, if signed by it for this very request."""
        rejection = Rejection.read(raw)
        if rejection is not None:
            raise Refused(f"an unsigned rejection, not taken as the coordinator's: {preview(rejection.reason)}")
        return Reply.read(self._open(raw), self.host, request.to_dict()).answer

    def key_taken(self) -> None:
        """The coordinator took this node's new key: the previous one has nothing left to vouch for."""
        trust.previous_key_path(self.node_key_path).unlink(missing_ok=True)


# -- the coordinator's end ----------------------------------------------------------------------------
class Replayed(Refused):
    """A request whose sequence was taken already (or a later one)."""


@dataclass(frozen=True)
class NodeRequest:
    """A node's request whose signature verified: by its accepted key, or (``enrolled``) by the key it
    presented at first contact, or (``rekeyed``) by a new key its accepted key endorsed."""

    host: str
    payload: dict[str, Any]
    envelope: Envelope
    key: str
    enrolled: bool = False
    rekeyed: bool = False

    @property
    def seq(self) -> int:
        """The request's sequence, which must be above the last accepted one (a replay is refused)."""
        sequence = self.payload.get("seq")
        if not isinstance(sequence, int) or isinstance(sequence, bool):
            raise Refused("no sequence number (replay protection)")
        return sequence

    def check_fresh(self, last: int) -> int:
        """The sequence, if above ``last`` (the last one taken); else ``Replayed``."""
        if self.seq <= last:
            raise Replayed(f"replayed: sequence {self.seq} is not above {last}")
        return self.seq

    @property
    def box_key(self) -> str | None:
        """The encryption key the node presents, checked to be one."""
        presented = self.payload.get("box_key")
        if not isinstance(presented, str):
            return None
        box.public_from_text(presented)  # a key, or refused
        return presented


class CoordinatorChannel:
    """The coordinator's end of the protocol: its signing key (read on first use) and, during a rotation,
    the previous key's endorsement of it."""

    def __init__(self, key_path: Path, missing: Callable[[Path], Exception]):
        self.key_path = key_path
        self._missing = missing
        self._key: Ed25519PrivateKey | None = None

    @property
    def key(self) -> Ed25519PrivateKey:
        if self._key is None:
            if not self.key_path.exists():
                raise self._missing(self.key_path)
            self._key = trust.load_private_key(self.key_path)
        return self._key

    def create_key(self) -> None:
        """Make the key (0600) unless there is one (``keygen``, ``serve``)."""
        self._key = trust.load_or_create_key(self.key_path)

    def rotate_key(self) -> None:
        """A new signing key; the old one kept beside it to endorse the new one until retired."""
        self._key = trust.rotate_key(self.key_path)

    def retire_previous_key(self) -> bool:
        previous = trust.previous_key_path(self.key_path)
        if not previous.exists():
            return False
        previous.unlink()
        return True

    def public_key_text(self) -> str:
        return trust.public_text(self.key.public_key())

    def _sign(self, payload: dict[str, Any]) -> dict[str, Any]:
        previous = trust.previous_key_path(self.key_path)
        endorsement = Endorsement.make(trust.load_private_key(previous), self.public_key_text(), "rotate") \
            if previous.exists() else None
        return Envelope.sign({**payload, "issued_at": time.time()}, self.key, endorsement).to_dict()

    # to nodes
    def seal_document(self, host: str, body: dict[str, Any], box_key: str) -> dict[str, Any]:
        """``body`` (carrying its generation) signed, and encrypted for the node's own key alone."""
        generation = body["generation"]
        encrypted = box.encrypt_for(box.public_from_text(box_key), {**body, "node": host},
                                    DocumentEnvelope.aad(host, generation))
        return self._sign(DocumentEnvelope(host, generation, encrypted=encrypted).to_dict())

    def reply(self, request: Any, answer: Any) -> dict[str, Any]:
        """An answer a node can trust: signed, for its node, bound to the digest of its request. Only for a
        request that verified and was fresh: anything else is answered with a ``Rejection``."""
        return self._sign(Reply.to(request, self.sender(request), answer).to_dict())

    def answer(self, request: Any, answer: Any) -> dict[str, Any]:
        """The reply to ``request``, or the unsigned rejection when the coordinator did not accept it."""
        return answer.to_dict() if isinstance(answer, Rejection) else self.reply(request, answer)

    # from nodes
    @staticmethod
    def sender(raw: Any) -> str | None:
        """The node a message says it comes from; None when it is not even shaped like a signed message."""
        try:
            return Envelope.read(raw).sender
        except Refused:
            return None

    @staticmethod
    def read_request(raw: Any, accepted_key: str | None, enrol: bool = True) -> NodeRequest:
        """A node's request, verified against the node's accepted key. With no accepted key, a first contact
        (``enrol``) proves it holds the key it presents; a request signed by a new key is taken when the
        accepted key endorses it (the node re-keyed)."""
        envelope = Envelope.read(raw)
        host = envelope.sender
        if host is None:
            raise Refused("malformed request, or a node name that is not a host name")
        if accepted_key is None:
            if not enrol or not envelope.key:
                raise Refused("unknown node")
            return NodeRequest(host, envelope.verify_with_presented_key(), envelope, envelope.key, enrolled=True)
        if envelope.key and envelope.key != accepted_key:
            payload = envelope.verify_with_presented_key()
            rekey = Endorsement.read(payload.get("rekey"))
            if rekey is None or not rekey.vouches(trust.public_from_text(accepted_key), envelope.key, "rekey"):
                raise Refused("signed with a key other than the node's accepted key")
            return NodeRequest(host, payload, envelope, envelope.key, rekeyed=True)
        return NodeRequest(host, envelope.verify(trust.public_from_text(accepted_key)), envelope, accepted_key)

    @staticmethod
    def read_reply(raw: Any, host: str, accepted_key: str, request: Any) -> Any:
        """A node's answer to ``request``, if signed by its accepted key for this very request."""
        payload = Envelope.read(raw).verify(trust.public_from_text(accepted_key))
        return Reply.read(payload, host, request).answer

    def seal_clear_document(self, body: dict[str, Any]) -> dict[str, Any]:
        """A document signed but not encrypted, as a lab leaves in a node's cache before its agent first ran
        (the agent has presented no encryption key yet)."""
        return self._sign(DocumentEnvelope(body.get("node"), body.get("generation"), document=body).to_dict())
