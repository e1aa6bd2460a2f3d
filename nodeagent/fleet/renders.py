"""What a converge keeps for the next: each node's last render, and the option errors of its last documents.

Every change converges the whole fleet (a role assigned to one node, a rollout's batch, one node's new
facts), and rendering is most of its cost (about 1 ms per node for the install guide's compute role). A node
renders the same document from the same inputs (its roles, variables and facts, the secrets) while the role
templates are unchanged, so its last render is handed back instead. Kept pickled: each use gets its own copy
(nothing a caller does to it reaches the next), about 3 KB per node.

The fleet checks lint every node's stored document and its new one (0.14 ms each for the compute role);
the stored one was linted when it was made, and its errors are kept by node, release and resources.
"""

from __future__ import annotations

import hashlib
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


class LastOptionErrors:
    """Per node, the option errors of its last documents, by target release and resources (their digest)."""

    KEEP = 2  # a node's stored document and the one a change makes

    def __init__(self) -> None:
        self._last: dict[str, list[tuple[str, bytes, list[str]]]] = {}

    def errors(self, host: str, release: str, resources: Any, lint: Callable[[], list[str]]) -> list[str]:
        """``lint()``'s errors, or those it gave for equal resources (``repr``: 1 and "1", lists and tuples
        differ) and the same release."""
        digest = hashlib.blake2b(repr(resources).encode(), digest_size=16).digest()
        known = self._last.setdefault(host, [])
        for at, seen, errors in known:
            if at == release and seen == digest:
                return list(errors)
        errors = lint()
        known.insert(0, (release, digest, list(errors)))
        del known[self.KEEP:]
        return errors

    def keep_only(self, hosts: Any) -> None:
        """Forget the nodes not in ``hosts``."""
        for host in set(self._last) - set(hosts):
            del self._last[host]
