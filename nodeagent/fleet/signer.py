"""The coordinator's signing key: every document and every answer an agent gets is sealed with it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nodeagent.wire import trust


class Signer:
    """Seals payloads with the coordinator's key, endorsed by the previous key while one is kept."""

    def __init__(self, key_path: Path):
        self.key_path = key_path
        self.key = trust.load_or_create_key(key_path)

    def seal(self, payload: dict[str, Any]) -> dict[str, Any]:
        return trust.endorsed(trust.seal({**payload, "issued_at": time.time()}, self.key), self.key_path)

    def signed_reply(self, request: Any, answer: Any) -> dict[str, Any]:
        """An answer an agent can trust: signed, for its node, echoing the sequence of its request."""
        payload = request.get("payload") if isinstance(request, dict) else None
        payload = payload if isinstance(payload, dict) else {}
        return self.seal({"kind": "reply", "node": payload.get("node"), "seq": payload.get("seq"),
                          "answer": answer})
