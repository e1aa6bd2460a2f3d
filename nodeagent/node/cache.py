"""The last document an agent accepted, kept sealed as it arrived: a restart enforces it before any broker
answers, after checking it again like a push (a tampered cache is refused)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from nodeagent.document import loading
from nodeagent.kit import files

LOG = logging.getLogger(__name__)


class DocumentCache:
    """``document.json`` in the agent's state directory."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "document.json"
        self.current: Any = None  # the sealed document held (saved, or loaded and accepted): a rollback's way back

    def load(self) -> Any:
        """The sealed document as it was cached, or None when there is none (OSError when unreadable)."""
        if not self.path.exists():
            return None
        return loading.loads(self.path.read_bytes(), str(self.path), as_json=True)

    def save(self, sealed: dict[str, Any]) -> None:
        """Cache it; when the state directory is full, say so (the document is enforced all the same)."""
        self.current = sealed
        try:
            files.write_private(self.path, json.dumps(sealed).encode())
        except OSError as exc:
            LOG.error("state directory %s: cannot cache the new document (%s); it is enforced, but a restart "
                      "would start from the previous one", self.path.parent, exc.strerror or exc)

    def restore(self, sealed: dict[str, Any] | None) -> None:
        """Go back to the document held before a change that was rolled back (None: to none)."""
        if sealed is None:
            self.current = None
            self.path.unlink(missing_ok=True)
        else:
            self.save(sealed)
