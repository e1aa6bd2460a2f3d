"""What the coordinator's parts refuse to do, as errors of the one hierarchy (``kit.errors``) the CLI turns
into one-line errors and exit codes."""

from __future__ import annotations

from nodeagent.kit.errors import InvalidInput, NodeagentError, NotFound

__all__ = ["FleetInconsistent", "InventoryBusy", "InvalidInput", "NotFound", "NotSetUp", "PushFailed", "RoleError"]


class RoleError(InvalidInput):
    """A role cannot be rendered for a node; the message says which variable, secret or interface."""


class FleetInconsistent(NodeagentError):
    """The rendered documents disagree between nodes; nothing was pushed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("the fleet's settings disagree, nothing was pushed:\n  " + "\n  ".join(problems))


class PushFailed(NodeagentError):
    """Stored (the inventory is the truth), but not pushed to some nodes: each fetches it at its next heartbeat."""

    def __init__(self, stored: list[tuple[str, int]], failed: dict[str, str]):
        self.stored = stored
        self.failed = failed
        reasons = sorted(set(failed.values()))
        super().__init__(f"stored, but not pushed to {', '.join(sorted(failed))} ({'; '.join(reasons)}): "
                         "each node fetches its document at its next heartbeat")


class NotSetUp(NodeagentError):
    """The coordinator's state (inventory, signing key) is not there: 'nodeagentctl keygen' makes it."""


class InventoryBusy(NodeagentError):
    """Rows the change needs were held by another transaction for longer than ``database_lock_timeout`` (a
    coordinator hung inside one, until the server ends it): nothing was stored; the change can be made again."""

    def __init__(self, what: str):
        super().__init__(f"{what}: rows it needs are held by another transaction (a hung coordinator? the database "
                         "ends it after database_idle_transaction_timeout); nothing was changed, try again")
