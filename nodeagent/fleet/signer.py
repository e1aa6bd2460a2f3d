"""The coordinator's signing key: every document and every answer an agent gets is sealed with it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.fleet.errors import NotSetUp
from nodeagent.wire import trust


class Signer:
    """Seals payloads with the coordinator's key, endorsed by the previous key while one is kept.

    The key is read on first use, so that commands which sign nothing (events, node list) need none.
    """

    def __init__(self, key_path: Path):
        self.key_path = key_path
        self._key: Ed25519PrivateKey | None = None

    @property
    def key(self) -> Ed25519PrivateKey:
        if self._key is None:
            if not self.key_path.exists():
                raise NotSetUp(f"no signing key at {self.key_path}: run 'nodeagentctl keygen' (it makes it)")
            self._key = trust.load_private_key(self.key_path)
        return self._key

    @key.setter
    def key(self, key: Ed25519PrivateKey) -> None:  # a rotation made a new one
        self._key = key

    def create(self) -> None:
        """Make the key (0600) unless there is one (``keygen``, ``serve``)."""
        self._key = trust.load_or_create_key(self.key_path)

    def seal(self, payload: dict[str, Any]) -> dict[str, Any]:
        return trust.endorsed(trust.seal({**payload, "issued_at": time.time()}, self.key), self.key_path)

    def signed_reply(self, request: Any, answer: Any) -> dict[str, Any]:
        """An answer an agent can trust: signed, for its node, echoing the sequence of its request."""
        payload = request.get("payload") if isinstance(request, dict) else None
        payload = payload if isinstance(payload, dict) else {}
        return self.seal({"kind": "reply", "node": payload.get("node"), "seq": payload.get("seq"),
                          "answer": answer})
