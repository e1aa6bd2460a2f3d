"""The checkpoint of a network change: what the node's network resources looked like before it, on disk.

Before a document that changes network resources (bridges, links, addresses, offloads, ``net.*``
parameters) is applied, each such resource that would change is observed, and its driver says which of its
own specs bring that state back (``Driver.restoring``). ``checkpoint.json`` in the agent's state directory
keeps them, with the document held before (sealed, as it was cached) and the probes that passed before,
written atomically before the first change: a crash at any point after it leaves a whole checkpoint, which
the next start rolls back before anything else.

A restore re-applies those specs through the same drivers, in the reverse of the change's order (an address
moved back before the bridge that took it is deleted).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeagent.document.model import Document, parse_document
from nodeagent.kit import files, passcache
from nodeagent.kit.result import ReconcileResult
from nodeagent.node.engine import Engine

LOG = logging.getLogger(__name__)
VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """One change in flight: its generation, what undoes it, what was held before, and the probes that count."""

    node: str
    generation: int
    restore: tuple[dict[str, Any], ...]  # per resource, in the change's order: {"id", "driver", "specs": [...]}
    previous: dict[str, Any] | None = None  # the sealed document held before (None: none)
    probes: tuple[dict[str, Any], ...] = ()  # the probes that passed before the change ({"id": "broker"}: its own)
    timeout: float = 60.0
    taken_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "node": self.node, "generation": self.generation, "restore": list(self.restore),
                "previous": self.previous, "probes": list(self.probes), "timeout": self.timeout,
                "taken_at": self.taken_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Checkpoint":
        if data.get("version") != VERSION:
            raise ValueError(f"checkpoint version {data.get('version')!r}, this agent reads {VERSION}")
        return cls(str(data["node"]), int(data["generation"]), tuple(data["restore"]), data.get("previous"),
                   tuple(data.get("probes", ())), float(data.get("timeout", 60.0)), float(data["taken_at"]))

    def resources(self) -> list[str]:
        return [entry["id"] for entry in self.restore]


def take(engine: Engine, document: Document) -> list[dict[str, Any]]:
    """What undoes ``document`` on this node: for each network resource it would change, the specs of its
    driver that bring back what is there now (empty: the document changes no network resource)."""
    entries = []
    with passcache.one_pass():  # only looks: the resources share their reads
        for resource_id in document.order:
            resource = document.resource(resource_id)
            driver = engine.registry.get(resource.driver)
            if not driver.network or document.mode_of(resource) == "monitor":
                continue
            try:
                observed = driver.observe(resource.spec, engine.ctx)
                specs = driver.restoring(resource.spec, observed)
                if specs is None or not driver.diff(resource.spec, observed):
                    continue
            except Exception as exc:  # its apply meets the same error: nothing of it will change
                LOG.info("resource '%s' not checkpointed: %s", resource.id, exc)
                continue
            entries.append({"id": resource.id, "driver": resource.driver, "specs": specs})
    return entries


def restore(engine: Engine, checkpoint: Checkpoint) -> ReconcileResult:
    """Apply what the checkpoint recorded, last change first, each spec through its driver."""
    resources: list[dict[str, Any]] = []
    for entry in reversed(checkpoint.restore):
        for number, spec in enumerate(entry["specs"]):
            after = {"after": [resources[-1]["id"]]} if resources else {}
            resources.append({**spec, "id": f"{entry['id'][:100]}.restore{number}", "driver": entry["driver"], **after})
    document = parse_document({"node": checkpoint.node, "generation": checkpoint.generation,
                               "resources": resources}, engine.registry)
    return engine.reconcile(document)


class CheckpointFile:
    """``checkpoint.json`` in the state directory: written before a change, removed once it is decided."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "checkpoint.json"

    def save(self, checkpoint: Checkpoint) -> None:
        files.write_private(self.path, json.dumps(checkpoint.to_dict()).encode())

    def load(self) -> Checkpoint | None:
        """The checkpoint a change left, or None; one that cannot be read is said and set aside (kept beside)."""
        files.remove_leftovers(self.path)
        if not self.path.exists():
            return None
        try:
            return Checkpoint.from_dict(json.loads(self.path.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_suffix(f".unreadable-{int(time.time())}")
            LOG.error("%s cannot be read (%s): moved to %s, nothing restored", self.path, exc, aside)
            self.path.replace(aside)
            return None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
