"""Confidentiality: documents sealed for one node, and the coordinator's secrets sealed at rest.

* In transit: each node has an X25519 key pair beside its Ed25519 signing key and presents
  the public half in its signed reports. The coordinator encrypts each document for its
  node (an ephemeral X25519 exchange, HKDF-SHA256, ChaCha20-Poly1305; the node name and
  generation are the associated data), so another node, or anyone bound to the exchange,
  sees ciphertext only. The document is then signed as before.
* At rest: the coordinator's secrets and rendered documents are encrypted under keys in a
  file of its own (``secrets.key``, 0600: the current key first, older ones after it while a
  rotation re-encrypts).

All from ``cryptography``, the library the signatures already use.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from nodeagent.kit import files
from nodeagent.wire.trust import Refused, read_private_pem

INFO = b"nodeagent document v1"
AT_REST = "nasealed:v1:"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except Exception:
        raise Refused("malformed encrypted document") from None


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (the one atomic write, files.write_private), owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    files.write_private(path, data)


# -- a node's encryption key --------------------------------------------------------------------
def load_or_create_key(path: str | Path) -> X25519PrivateKey:
    path = Path(path)
    if path.exists():
        return read_private_pem(path, X25519PrivateKey)
    key = X25519PrivateKey.generate()
    write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return key


def public_text(key: X25519PublicKey) -> str:
    return _b64(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def public_from_text(text: str) -> X25519PublicKey:
    try:
        return X25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except Exception:
        raise Refused("not an X25519 public key") from None


def _cipher(shared: bytes, ephemeral: bytes, recipient: bytes) -> ChaCha20Poly1305:
    key = HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=INFO).derive(shared)
    return ChaCha20Poly1305(key)


def encrypt_for(recipient: X25519PublicKey, payload: Any, aad: bytes) -> dict[str, str]:
    """``payload`` (JSON) readable only with the recipient's private key."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    recipient_raw = recipient.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    nonce = os.urandom(12)
    data = json.dumps(payload, separators=(",", ":")).encode()
    sealed = _cipher(ephemeral.exchange(recipient), ephemeral_raw, recipient_raw).encrypt(nonce, data, aad)
    return {"epk": _b64(ephemeral_raw), "nonce": _b64(nonce), "data": _b64(sealed)}


def decrypt(key: X25519PrivateKey, box: Any, aad: bytes) -> Any:
    if not isinstance(box, dict):
        raise Refused("malformed encrypted document")
    ephemeral_raw = _unb64(box.get("epk"))
    try:
        ephemeral = X25519PublicKey.from_public_bytes(ephemeral_raw)
        recipient_raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        data = _cipher(key.exchange(ephemeral), ephemeral_raw, recipient_raw).decrypt(
            _unb64(box.get("nonce")), _unb64(box.get("data")), aad)
    except (InvalidTag, ValueError):
        raise Refused("cannot decrypt: not encrypted for this node's key") from None
    return json.loads(data)


# -- the coordinator's keys at rest ---------------------------------------------------------------
class Vault:
    """Encrypts values for the inventory database; decrypts with whichever key of the file sealed them."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            write_private(self.path, _b64(ChaCha20Poly1305.generate_key()).encode() + b"\n")
        if self.path.stat().st_mode & 0o077:
            raise PermissionError(f"key file {self.path} is readable by others: chmod 600 it")
        self.keys = [base64.b64decode(line) for line in self.path.read_text().split()]

    @staticmethod
    def key_id(key: bytes) -> str:
        return hashlib.sha256(key).hexdigest()[:8]

    def encrypt(self, text: str) -> str:
        nonce = os.urandom(12)
        sealed = ChaCha20Poly1305(self.keys[0]).encrypt(nonce, text.encode(), None)
        return f"{AT_REST}{self.key_id(self.keys[0])}:{_b64(nonce + sealed)}"

    def decrypt(self, text: str) -> str:
        if not text.startswith(AT_REST):
            return text  # stored before encryption at rest: read as is, sealed when next written
        key_id, _, data = text[len(AT_REST):].partition(":")
        for key in self.keys:
            if self.key_id(key) == key_id:
                raw = base64.b64decode(data)
                return ChaCha20Poly1305(key).decrypt(raw[:12], raw[12:], None).decode()
        raise ValueError(f"sealed with key {key_id}, which is not in {self.path}")

    def begin_rotation(self) -> None:
        """A new current key, the old ones kept for reading until ``end_rotation``."""
        self.keys.insert(0, ChaCha20Poly1305.generate_key())
        self._save()

    def end_rotation(self) -> None:
        del self.keys[1:]
        self._save()

    def _save(self) -> None:
        write_private(self.path, "".join(_b64(key) + "\n" for key in self.keys).encode())
