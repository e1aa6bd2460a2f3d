"""Signatures between the coordinator and the agents (Ed25519, from ``cryptography``).

The coordinator signs everything it sends an agent; each agent signs its reports
with a key of its own, accepted once by the operator. A sealed message is a plain
dict: ``{"payload": {...}, "signature": "<base64>", "key": "<base64 public key>"}``.
The signature covers the payload's canonical JSON, so any change to it is caught.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from nodeagent.kit import files
from nodeagent.kit.errors import InvalidInput, NodeagentError


class Refused(NodeagentError):
    """A message that must not be acted on; the text says why, for logs, events and reports."""


def canonical(payload: Any) -> bytes:
    # surrogatepass: a hostile message may hold lone surrogates; its digest must still be computable
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8",
                                                                                                 "surrogatepass")


def load_or_create_key(path: str | Path) -> Ed25519PrivateKey:
    """The private key at ``path``, made (mode 0600) when it does not exist yet."""
    path = Path(path)
    if path.exists():
        return load_private_key(path)
    key = Ed25519PrivateKey.generate()
    write_private_key(key, path)
    return key


def write_private_key(key: Ed25519PrivateKey, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    files.write_private(path, pem)
    files.write_private(path.with_suffix(".pub"), (public_text(key.public_key()) + "\n").encode(), 0o644)


def read_private_pem(path: str | Path, kind: type) -> Any:
    """A private key of ``kind`` from a PEM file only its owner may read (signing and encryption keys alike)."""
    path = Path(path)
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"private key {path} is readable by others: chmod 600 it")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, kind):
        raise InvalidInput(f"{path} is not an {kind.__name__.replace('PrivateKey', '')} private key")
    return key


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    return read_private_pem(path, Ed25519PrivateKey)


def public_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_from_text(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except Exception:
        raise Refused("not an Ed25519 public key") from None


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    return public_from_text(Path(path).read_text())


def seal(payload: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    signature = key.sign(canonical(payload))
    return {"payload": payload, "signature": base64.b64encode(signature).decode(),
            "key": public_text(key.public_key())}


def digest(message: Any) -> str:
    """What names a request in its answer: the hash of the whole sealed request."""
    import hashlib

    return hashlib.sha256(canonical(message)).hexdigest()


def unseal(message: Any, key: Ed25519PublicKey) -> dict[str, Any]:
    """The payload of a message signed by ``key``, or Refused saying what was wrong."""
    if not isinstance(message, dict) or "payload" not in message:
        raise Refused("malformed message")
    if not message.get("signature"):
        raise Refused("unsigned")
    try:
        key.verify(base64.b64decode(message["signature"]), canonical(message["payload"]))
    except (InvalidSignature, ValueError, TypeError):
        raise Refused("bad signature") from None
    if not isinstance(message["payload"], dict):
        raise Refused("malformed payload")
    return message["payload"]


# -- key rotation: the old key vouches for the new one ------------------------------------------
def endorse(old: Ed25519PrivateKey, new_public: str, purpose: str) -> dict[str, str]:
    """The old key's signature over a new public key, so whoever trusts the old key can move to the new."""
    return {"key": public_text(old.public_key()),
            "signature": base64.b64encode(old.sign(f"nodeagent-{purpose}:{new_public}".encode())).decode()}


def endorses(trusted: Ed25519PublicKey, endorsement: Any, new_public: str, purpose: str) -> bool:
    if not isinstance(endorsement, dict) or endorsement.get("key") != public_text(trusted):
        return False
    try:
        trusted.verify(base64.b64decode(str(endorsement.get("signature"))),
                       f"nodeagent-{purpose}:{new_public}".encode())
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def previous_key_path(path: Path) -> Path:
    return path.with_name(path.name + ".previous")


def rotate_key(path: Path) -> Ed25519PrivateKey:
    """A new key at ``path``; the old one kept beside it (``.previous``) to endorse the new one."""
    previous = previous_key_path(path)
    previous.unlink(missing_ok=True)
    os.replace(path, previous)
    path.with_suffix(".pub").unlink(missing_ok=True)
    return load_or_create_key(path)
