"""Signatures: what is sealed verifies, anything changed or foreign is refused."""

from __future__ import annotations

import copy
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.wire import trust


def test_seal_and_unseal():
    key = Ed25519PrivateKey.generate()
    sealed = trust.seal({"a": 1, "b": [1, 2]}, key)
    assert trust.unseal(sealed, key.public_key()) == {"a": 1, "b": [1, 2]}
    assert sealed["key"] == trust.public_text(key.public_key())


@pytest.mark.parametrize("damage, reason", [
    (lambda m: m["payload"].update(a=2), "bad signature"),
    (lambda m: m.update(signature=""), "unsigned"),
    (lambda m: m.pop("signature"), "unsigned"),
    (lambda m: m.update(signature="not base64!"), "bad signature"),
    (lambda m: m.pop("payload"), "malformed message"),
])
def test_tampered_messages_are_refused(damage, reason):
    key = Ed25519PrivateKey.generate()
    sealed = copy.deepcopy(trust.seal({"a": 1}, key))
    damage(sealed)
    with pytest.raises(trust.Refused, match=reason):
        trust.unseal(sealed, key.public_key())


def test_another_key_is_refused():
    sealed = trust.seal({"a": 1}, Ed25519PrivateKey.generate())
    with pytest.raises(trust.Refused, match="bad signature"):
        trust.unseal(sealed, Ed25519PrivateKey.generate().public_key())


def test_keys_are_made_private_and_reloaded(tmp_path):
    path = tmp_path / "keys" / "node.key"
    key = trust.load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = trust.load_or_create_key(path)
    assert trust.public_text(again.public_key()) == trust.public_text(key.public_key())
    assert trust.load_public_key(path.with_suffix(".pub")) is not None
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        trust.load_private_key(path)
