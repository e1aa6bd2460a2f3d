"""One reconcile: observe, diff, apply, verify each resource in dependency order.

A failure stays with its resource; whatever depends on it is skipped and says
why. A notified resource reacts once, at its turn in the order (after everything
that notifies it, before what comes after it).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Iterable

from nodeagent.kit.context import Context
from nodeagent.kit.result import Change
from nodeagent.kit import files, passcache
from nodeagent.kit.errors import Conflict, DriverError, InvalidResource, PathRefused
from nodeagent.document.model import Document, Resource
from nodeagent.node.redact import redact_change, scrub
from nodeagent.document.registry import DriverRegistry
from nodeagent.kit.result import ReconcileResult, ResourceResult, Status

LOG = logging.getLogger(__name__)
_BLOCKING = (Status.FAILED, Status.SKIPPED)


class Engine:
    """Applies documents through the registry's drivers, in one context."""

    def __init__(self, registry: DriverRegistry, ctx: Context):
        self.registry = registry
        self.ctx = ctx
        self._swept: set[str] = set()  # managed paths whose leftovers were removed since this engine started

    def preflight(self, document: Document) -> None:
        """Checks that need the node but change nothing: paths inside the allowed roots, the namespace."""
        try:
            self.ctx.check_netns()
        except DriverError as exc:
            raise InvalidResource(None, str(exc), "(context)") from None
        for resource in document.resources:
            try:
                self.registry.get(resource.driver).confine(resource.spec, self.ctx)
            except InvalidResource as exc:
                raise exc.with_resource(resource.id) from None

    def reconcile(self, document: Document, dry_run: bool = False,
                  only: Iterable[str] | None = None) -> ReconcileResult:
        """Bring the node to ``document`` (or only show what differs when ``dry_run``)."""
        with passcache.one_pass():  # resources share their reads (one look at a link) until something changes
            return self._reconcile(document, dry_run, only)

    def _reconcile(self, document: Document, dry_run: bool, only: Iterable[str] | None) -> ReconcileResult:
        started_at, clock = time.time(), time.monotonic()
        if not dry_run:
            self.remove_leftovers(document)
        wanted = set(only) if only is not None else None
        results: dict[str, ResourceResult] = {}
        to_notify: dict[str, list[str]] = {}
        notified: dict[str, list[str]] = {}
        for resource_id in document.order:
            if wanted is not None and resource_id not in wanted:
                continue
            resource = document.resource(resource_id)
            blocked = [p for p in document.predecessors(resource_id)
                       if p in results and results[p].status in _BLOCKING]
            if blocked:
                reason = f"skipped: '{blocked[0]}' {results[blocked[0]].status.value}"
                results[resource_id] = ResourceResult(resource.id, resource.driver, Status.SKIPPED, error=reason)
                continue
            result = self._reconcile_one(resource, document.mode_of(resource), dry_run)
            if resource_id in to_notify:
                # Everything that notifies it comes before it in the order: restart it now, once, so that what
                # comes after (an agent that needs the restarted server's new plugins) meets the new process.
                sources = to_notify.pop(resource_id)
                notified[resource_id] = sources
                result = self._notify(document, resource, result, sources, dry_run)
            results[resource_id] = result
            if result.status in (Status.CHANGED, Status.PENDING):
                for target in _notified_on_change(document, resource):
                    to_notify.setdefault(target, []).append(resource.id)
        for target, sources in to_notify.items():
            # Not reached in the order: a targeted reconcile (a drift) changed what this service reads, or
            # another resource of a shared file changed after the service's turn.
            if target not in results:
                results[target] = self._reconcile_one(document.resource(target),
                                                      document.mode_of(document.resource(target)), dry_run)
            results[target] = self._notify(document, document.resource(target), results[target], sources, dry_run)
            notified.setdefault(target, sources)
        ordered = tuple(results[r] for r in document.order if r in results)
        return ReconcileResult(document.node, document.generation, dry_run, ordered, started_at,
                               time.monotonic() - clock, tuple(notified))

    def _reconcile_one(self, resource: Resource, mode: str, dry_run: bool) -> ResourceResult:
        driver = self.registry.get(resource.driver)
        clock = time.monotonic()
        changes: list[Change] = []
        try:
            changes = driver.diff(resource.spec, driver.observe(resource.spec, self.ctx))
            if not changes:
                status = Status.IN_SYNC
            elif dry_run:
                status = Status.PENDING
            elif mode == "monitor":
                status = Status.DRIFTED
                LOG.warning("resource '%s' drifted (monitor mode, left as found): %s",
                            resource.id, self._describe(resource, changes))
            else:
                if driver.paths(resource.spec) and driver.diff(resource.spec,
                                                               driver.observe(resource.spec, self.ctx)) != changes:
                    # A person edits files, not bridges: an edit made since the look above is drift of its
                    # own, recorded by the reconcile its event triggers, never overwritten unseen.
                    raise Conflict(f"'{resource.id}' was edited while being corrected; it is looked at again")
                try:
                    driver.apply(resource.spec, changes, self.ctx)
                finally:
                    passcache.forget()  # what the pass read before may be gone: the check below looks afresh
                remaining = driver.diff(resource.spec, driver.observe(resource.spec, self.ctx))
                if remaining:
                    fields = ", ".join(c.field for c in remaining)
                    raise DriverError(f"applied, but the node still differs in: {fields}")
                status = Status.CHANGED
                LOG.info("resource '%s' changed: %s", resource.id, self._describe(resource, changes))
        except (DriverError, InvalidResource, OSError) as exc:
            return self._failure(resource, changes, exc, time.monotonic() - clock)
        except Exception as exc:  # a driver bug must not stop the other resources
            LOG.exception("resource '%s': unexpected error in driver '%s'", resource.id, resource.driver)
            return self._failure(resource, changes, exc, time.monotonic() - clock, unexpected=True)
        return ResourceResult(resource.id, resource.driver, status, self._redacted(resource, changes),
                              duration=time.monotonic() - clock)

    def remove_leftovers(self, document: Document) -> None:
        """Delete what an interrupted write left beside each managed file, once per path and engine."""
        for resource in document.resources:
            for path, follow_final in self.registry.get(resource.driver).paths(resource.spec):
                if path in self._swept:
                    continue
                self._swept.add(path)
                try:
                    places = [self.ctx.host_path(path, follow_final), self.ctx.backup_path(path)]
                except PathRefused:
                    continue  # reported by the reconcile of that resource
                for place in filter(None, places):
                    for leftover in files.remove_leftovers(place):
                        LOG.warning("removed '%s', left by an interrupted write", leftover)

    def _notify(self, document: Document, target: Resource, result: ResourceResult, sources: list[str],
                dry_run: bool) -> ResourceResult:
        if result.status in _BLOCKING:
            return result
        by = ", ".join(f"'{s}'" for s in sources)
        if dry_run:
            note = f"would be notified by {by}"
        elif document.mode_of(target) == "monitor":
            note = f"notified by {by}; not acted on in monitor mode"
        else:
            try:
                note = f"{self.registry.get(target.driver).notify(target.spec, self.ctx)} (notified by {by})"
            except Exception as exc:
                return self._failure(target, list(result.changes), exc, result.duration)
            finally:
                passcache.forget()  # a restarted service may make links of its own
            status = Status.CHANGED
            return dataclasses.replace(result, status=status, notified=result.notified + (note,))
        return dataclasses.replace(result, notified=result.notified + (note,))

    def _failure(self, resource: Resource, changes: list[Change], exc: Exception, duration: float,
                 unexpected: bool = False) -> ResourceResult:
        kind = exc.kind if isinstance(exc, DriverError) else "permanent"
        message = f"unexpected {type(exc).__name__}: {exc}" if unexpected else str(exc)
        message = scrub(message, resource.secrets)
        LOG.error("resource '%s' failed (%s): %s", resource.id, kind, message)
        return ResourceResult(resource.id, resource.driver, Status.FAILED, self._redacted(resource, changes),
                              error=message, error_kind=kind, duration=duration,
                              retry_in=getattr(exc, "delay", None))

    @staticmethod
    def _redacted(resource: Resource, changes: list[Change]) -> tuple[Change, ...]:
        return tuple(redact_change(c, resource.sensitive, resource.secrets) for c in changes)

    def _describe(self, resource: Resource, changes: list[Change]) -> str:
        return "; ".join(c.describe() for c in self._redacted(resource, changes))


def _notified_on_change(document: Document, resource: Resource) -> list[str]:
    """What a change of ``resource`` notifies: its own list, and that of every resource managing the same file.

    Two roles on one node may share a file (the two-node guide's controller writes neutron.conf as the
    server and as the agents): whichever resource changed it, every service that reads it restarts.
    """
    targets = list(resource.notify)
    path = resource.spec.get("path")
    if path:
        for other in document.resources:
            if other.id != resource.id and other.spec.get("path") == path:
                targets += other.notify
    return list(dict.fromkeys(targets))
