"""Key rotation on the coordinator's side (``nodeagentctl keygen --rotate``).

* The signing key: a new one is made and the old one kept as ``coordinator.key.previous``;
  while it is there, every message carries the old key's endorsement of the new one, and
  each agent moves to the new key at the first message it gets (its heartbeat's answer).
  ``--retire-previous`` removes the old key once every node has reported.
* The at-rest key (``secrets.key``): a new key is put first in the file, every secret and
  stored document is re-encrypted in one transaction, then the old key is dropped. A crash in
  between leaves both keys in the file, so nothing becomes unreadable.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm.attributes import flag_modified

from nodeagent.wire import trust
from nodeagent.fleet.inventory import Secret, StateDocument


def rotate(coordinator: Any) -> int:
    """Rotate both keys; returns how many stored values were re-encrypted."""
    coordinator.key = trust.rotate_key(coordinator.key_path)
    coordinator.vault.begin_rotation()
    count = 0
    with coordinator.inventory.session() as session:
        for row, column in [(s, "value") for s in session.query(Secret)] + \
                           [(d, "body") for d in session.query(StateDocument)]:
            flag_modified(row, column)  # written again, so sealed under the new key
            count += 1
    coordinator.vault.end_rotation()
    signing = trust.public_text(coordinator.key.public_key())
    coordinator.inventory.add_event(None, "keys.rotated", f"signing key {signing}; {count} stored values re-encrypted")
    return count


def retire_previous(coordinator: Any) -> bool:
    """Stop endorsing the new signing key with the old one; False when there was no old key."""
    previous = trust.previous_key_path(coordinator.key_path)
    if not previous.exists():
        return False
    previous.unlink()
    coordinator.inventory.add_event(None, "keys.retired", "the previous signing key is gone")
    return True
