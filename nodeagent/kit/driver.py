"""The driver contract: what every driver implements.

A driver reads (``observe``), compares (``diff``), writes (``apply``) and says what to watch
(``watches``: values of ``kit.watches``); the engine and the enforcer decide when each happens.
Drivers import from the kit only (``nodeagent.kit``): this module, ``fields``, ``files``,
``context``, ``errors``, ``watches`` and ``result`` (the ``Change`` value).
"""

from __future__ import annotations

import abc
from typing import Any, Dict

from nodeagent.kit.context import Context
from nodeagent.kit.errors import InvalidResource
from nodeagent.kit.result import Change
from nodeagent.kit.watches import File, Watch


Spec = Dict[str, Any]  # a resource's fields as the document gives them, normalised by ``validate``


class Driver(abc.ABC):
    """Base class of every driver: ``observe``, ``diff`` and ``apply`` are the contract (abstract); the rest
    has defaults a driver overrides when it needs to.

    ``phase`` gives the natural order between resources that have no explicit
    edge: files first, then network objects, then services that read both.
    ``notifiable`` drivers accept ``notify`` edges (a restart when a resource
    they depend on changed).
    """

    name: str = ""
    phase: int = 50
    notifiable: bool = False
    network: bool = False  # manages network state: checkpointed before a change, restored by a rollback
    fields: dict[str, str] = {}  # field -> one-line help, for error messages

    def validate(self, spec: Spec) -> Spec:
        """Return the normalised spec or raise InvalidResource naming the field."""
        return dict(spec)

    def paths(self, spec: Spec) -> list[tuple[str, bool]]:
        """Files this resource writes, as (path, follow_final_symlink), checked before anything runs."""
        return []

    def confine(self, spec: Spec, ctx: Context) -> None:
        """Refuse (InvalidResource) a resource that would touch anything outside the allowed roots.

        The default checks ``paths()``; a driver with other paths (a link's target) adds them.
        """
        from nodeagent.kit.errors import PathRefused

        for path, follow_final in self.paths(spec):
            try:
                ctx.host_path(path, follow_final)
            except PathRefused as exc:
                raise InvalidResource("path", f"is refused: {exc}") from None

    @abc.abstractmethod
    def observe(self, spec: Spec, ctx: Context) -> Any:
        """Read the real state; change nothing."""
        raise NotImplementedError

    @abc.abstractmethod
    def diff(self, spec: Spec, observed: Any) -> list[Change]:
        """Return what differs; [] means in sync."""
        raise NotImplementedError

    @abc.abstractmethod
    def apply(self, spec: Spec, changes: list[Change], ctx: Context) -> None:
        """Make the real state match; must be idempotent."""
        raise NotImplementedError

    def notify(self, spec: Spec, ctx: Context) -> str:
        """React to a change of a resource that notifies this one; return what was done."""
        raise NotImplementedError(f"driver '{self.name}' cannot be notified")

    def watches(self, spec: Spec, ctx: Context) -> list[Watch]:
        """What of this resource's real state the node announces (values of ``kit.watches``); the watch hub
        listens and touches the resource. Whatever is not declared is seen at the periodic resync.

        The default watches the files ``paths()`` names, which is all a file driver needs.
        """
        from nodeagent.kit.errors import PathRefused

        found: list[Watch] = []
        for path, follow_final in self.paths(spec):
            try:
                found.append(File(ctx.host_path(path, follow_final)))
            except PathRefused:
                continue  # reported by the reconcile of this resource
        return found

    def restoring(self, spec: Spec, observed: Any) -> list[Spec] | None:
        """Specs of this driver that bring back ``observed`` (what ``observe`` found before a change), applied
        in order by a rollback; None: the resource is no network resource and is not checkpointed.

        Only network resources (bridges, links, addresses, offloads, ``net.*`` parameters) can cut a node off
        its management network; a driver that manages one returns what undoes ``spec`` on the node it saw.
        """
        return None

    def sensitive_leaves(self, spec: Spec) -> list[Any]:
        """The values a resource marked ``sensitive: true`` hides everywhere: all of them, by default."""
        return _leaves(spec)

    def secret_values(self, spec: Spec, field: str) -> list[str]:
        """The values a ``sensitive`` entry names, so they can be masked everywhere.

        Raises InvalidResource when the entry names nothing in this resource.
        """
        if field not in spec:
            raise InvalidResource("sensitive", f"names '{field}', which is not a field of this resource")
        value = spec[field]
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]
