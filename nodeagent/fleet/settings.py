"""What the operator sets: a node's roles, the site's and a node's variables, secrets.

Each change re-renders the fleet and pushes what changed.
"""

from __future__ import annotations

import time
from typing import Any

from nodeagent.fleet.desired import DesiredState
from nodeagent.fleet.errors import NotFound
from nodeagent.fleet.inventory import Inventory, Node, Secret, SiteVariable


class Settings:
    """Roles, variables and secrets in the inventory, each change followed by a converge of the fleet."""

    def __init__(self, inventory: Inventory, desired: DesiredState):
        self.inventory = inventory
        self.desired = desired

    def assign(self, host: str, roles: list[str], remove: bool = False) -> list[tuple[str, int]]:
        for role in roles:
            self.desired.roles.source(role)  # an unknown role is an error naming the known ones
        node = self.inventory.node(host)
        if node is None:
            raise NotFound(f"no node '{host}' (it appears when its agent first reports)")
        before = list(node.roles or [])
        after = [r for r in before if r not in roles] if remove else before + [r for r in roles if r not in before]
        return self._change(lambda session: self._set_roles(session, host, after),
                            lambda session: self._set_roles(session, host, before))

    def _set_roles(self, session: Any, host: str, roles: list[str]) -> None:
        session.get(Node, host).roles = roles
        self.inventory.add_event(host, "roles.set", ", ".join(roles) or "(none)", session)

    def set_variable(self, key: str, value: str, host: str | None = None) -> list[tuple[str, int]]:
        if host is not None and self.inventory.node(host) is None:
            raise NotFound(f"no node '{host}'")
        # What was set at this level before (None: nothing), to put back if the push is refused.
        previous = (self.inventory.node(host).variables or {}).get(key) if host else self.inventory.variables().get(key)

        def put(session: Any, new: str | None) -> None:
            if host is None:
                if new is None:
                    session.query(SiteVariable).filter(SiteVariable.key == key).delete()
                else:
                    session.merge(SiteVariable(key=key, value=new))
                return
            node = session.get(Node, host)
            values = dict(node.variables or {})
            if new is None:
                values.pop(key, None)
            else:
                values[key] = new
            node.variables = values
        return self._change(lambda session: put(session, value),
                            lambda session: put(session, previous))

    def _change(self, do: Any, undo: Any) -> list[tuple[str, int]]:
        """Make an inventory change and push its consequences; undo it when they cannot be pushed."""
        with self.inventory.session() as session:
            do(session)
        try:
            return self.desired.converge_roles()
        except Exception:
            with self.inventory.session() as session:
                undo(session)
            raise

    def set_secret(self, key: str, value: str) -> list[tuple[str, int]]:
        if not value:
            raise ValueError(f"secret '{key}' must not be empty")
        before = self.inventory.secrets().get(key)

        def put(session: Any, new: str | None) -> None:
            if new is None:
                session.query(Secret).filter(Secret.key == key).delete()
            else:
                session.merge(Secret(key=key, value=new, set_at=time.time()))
        result = self._change(lambda session: put(session, value), lambda session: put(session, before))
        self.inventory.add_event(None, "secret.set", key)
        return result
