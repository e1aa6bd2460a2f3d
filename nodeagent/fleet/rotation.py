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

from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified

from nodeagent.fleet.inventory import Inventory, Secret, StateDocument
from nodeagent.wire.box import Vault
from nodeagent.wire.protocol import CoordinatorChannel

# Stored documents re-encrypted per flush: a database server ends a transaction idle for longer than
# database_idle_transaction_timeout, and sealing a whole inventory's documents at once takes seconds.
BATCH = 500


def rotate(channel: CoordinatorChannel, vault: Vault, inventory: Inventory) -> int:
    """Rotate both keys; returns how many stored values were re-encrypted."""
    channel.rotate_key()
    vault.begin_rotation()
    count = 0
    with inventory.session() as session:
        for secret in session.scalars(select(Secret)):
            flag_modified(secret, "value")  # written again, so sealed under the new key
            count += 1
        ids = list(session.scalars(select(StateDocument.id).order_by(StateDocument.id)))
        for start in range(0, len(ids), BATCH):  # a batch read, re-sealed and written: never idle for long
            batch = select(StateDocument).where(StateDocument.id.in_(ids[start:start + BATCH]))
            for document in session.scalars(batch):
                flag_modified(document, "body")
                count += 1
            session.flush()
            session.expunge_all()
    vault.end_rotation()
    inventory.add_event(None, "keys.rotated",
                        f"signing key {channel.public_key_text()}; {count} stored values re-encrypted")
    return count


def retire_previous(channel: CoordinatorChannel, inventory: Inventory) -> bool:
    """Stop endorsing the new signing key with the old one; False when there was no old key."""
    if not channel.retire_previous_key():
        return False
    inventory.add_event(None, "keys.retired", "the previous signing key is gone")
    return True
