"""Each node's last render, kept by the coordinator: a fleet-wide converge renders again only what moved.

Every change converges the whole fleet (a role assigned to one node, a rollout's batch, one node's new
facts), and rendering is most of its cost (about 1 ms per node for the install guide's compute role). A node
renders the same document from the same inputs (its roles, variables and facts, the secrets) while the role
templates are unchanged, so its last render is handed back instead. Kept pickled: each use gets its own copy
(nothing a caller does to it reaches the next), about 3 KB per node.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

from nodeagent.document.model import copied

Inputs = tuple[list[str], dict[str, Any], Any]  # roles, variables, facts


class LastRenders:
    """Per node: the inputs, secrets and template version of its last render, and the document it made."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[tuple[Any, ...], bytes]] = {}

    def render(self, host: str, inputs: Inputs, secrets: dict[str, str], templates: Any,
               make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The node's document: its last render when made from equal inputs, secrets and ``templates`` (what
        the templates are now), else ``make()``'s (remembered; an error it raises forgets the node)."""
        key = (inputs, secrets, templates)
        last = self._last.get(host)
        if last is not None and last[0] == key:
            return pickle.loads(last[1])
        self._last.pop(host, None)
        body = make()
        self._last[host] = ((copied(list(inputs[0])), copied(inputs[1]), copied(inputs[2])), copied(secrets),
                            templates), pickle.dumps(body, pickle.HIGHEST_PROTOCOL)
        return body

    def keep_only(self, hosts: Any) -> None:
        """Forget the nodes not in ``hosts`` (forgotten, or without roles now)."""
        for host in set(self._last) - set(hosts):
            del self._last[host]
