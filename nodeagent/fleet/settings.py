"""What the operator sets: a node's roles, the site's and a node's variables, secrets.

Each change is made inside the desired state's one transaction (``DesiredState.converge``): stored
with every node's new document, or, when any node fails to render or the fleet checks fail, not at all.
"""

from __future__ import annotations

import fnmatch
import time
from typing import Callable

from sqlalchemy.orm import Session

from nodeagent.fleet.desired import Change, DesiredState
from nodeagent.fleet.errors import InvalidInput, NotFound
from nodeagent.fleet.inventory import Inventory, Node, Secret, SiteVariable


Converge = Callable[[Change], list[tuple[str, int]]]  # how a change goes out: at once, or through a rollout


class Settings:
    """Roles, variables and secrets in the inventory, each change converging the fleet with it."""

    def __init__(self, inventory: Inventory, desired: DesiredState):
        self.inventory = inventory
        self.desired = desired

    def assign(self, hosts: str | list[str], roles: list[str], remove: bool = False,
               converge: Converge | None = None) -> list[tuple[str, int]]:
        """Give (or take) roles to one node or many in one change (one render of the fleet); returns (host,
        generation) of each document stored. ``converge``: how the change goes out (a rollout's), else at once."""
        for role in roles:
            self.desired.roles.source(role)  # an unknown role is an error naming the known ones
        hosts = [hosts] if isinstance(hosts, str) else hosts

        def change(session: Session) -> None:
            for host in hosts:
                node = _node(session, host)
                before = list(node.roles or [])
                node.roles = [r for r in before if r not in roles] if remove else \
                    before + [r for r in roles if r not in before]
                self.inventory.add_event(host, "roles.set", ", ".join(node.roles) or "(none)", session)
        return (converge or self.desired.converge)(change)

    def matching(self, patterns: str) -> list[str]:
        """The nodes named by ``patterns``: names or shell patterns, comma-separated (``compute*,network1``);
        a pattern that names no node is an error naming it."""
        names = [node.name for node in self.inventory.nodes()]
        chosen: list[str] = []
        for pattern in filter(None, (p.strip() for p in patterns.split(","))):
            found = fnmatch.filter(names, pattern.lower()) if any(c in pattern for c in "*?[") else \
                [pattern] if pattern in names else []
            if not found:
                raise NotFound(f"no node matches '{pattern}'")
            chosen += [name for name in found if name not in chosen]
        if not chosen:
            raise InvalidInput("no node named")
        return chosen

    def set_variable(self, key: str, value: str, host: str | None = None,
                     converge: Converge | None = None) -> list[tuple[str, int]]:
        """Set a variable for the site, or for one node (overriding the site's); ``converge`` as for assign."""
        def change(session: Session) -> None:
            if host is None:
                session.merge(SiteVariable(key=key, value=value))
            else:
                node = _node(session, host)
                node.variables = {**(node.variables or {}), key: value}
        return (converge or self.desired.converge)(change)

    def set_secret(self, key: str, value: str) -> list[tuple[str, int]]:
        if not value:
            raise InvalidInput(f"secret '{key}' must not be empty")

        def change(session: Session) -> None:
            session.merge(Secret(key=key, value=value, set_at=time.time()))
            self.inventory.add_event(None, "secret.set", key, session)
        return self.desired.converge(change)

    def variable_origins(self, host: str | None = None) -> list[tuple[str, str, str]]:
        """Each variable the site (or ``host``) sees: its value, and whether the node, the site or a default
        sets it."""
        from nodeagent.fleet.roles import DEFAULTS

        if host is not None and self.inventory.node(host) is None:
            raise NotFound(f"no node '{host}'")
        site = self.inventory.variables()
        seen = self.inventory.variables(host) if host else site
        rows = []
        for key in sorted(set(DEFAULTS) | set(seen)):
            origin = "node" if key in seen and seen.get(key) != site.get(key, object()) else \
                "site" if key in site else "default"
            rows.append((key, seen.get(key, DEFAULTS.get(key)), origin))
        return rows


def _node(session: Session, host: str) -> Node:
    node = session.get(Node, host)
    if node is None:
        raise NotFound(f"no node '{host}' (it appears when its agent first reports)")
    return node
