"""Small helpers for driving the engine on one or a few resources."""

from __future__ import annotations

import contextlib
import queue
import time
from typing import Any, Iterator

from nodeagent.kit.context import Context
from nodeagent.kit.driver import Driver
from nodeagent.node.engine import Engine
from nodeagent.node.watchhub import WatchHub
from nodeagent.document.model import parse_document
from nodeagent.kit.result import ResourceResult


def reconcile(engine: Engine, *resources: dict, dry_run: bool = False) -> dict[str, ResourceResult]:
    document = parse_document({"node": "lab", "generation": 1, "resources": list(resources)}, engine.registry)
    result = engine.reconcile(document, dry_run=dry_run)
    return {item.id: item for item in result.resources}


def details(result: ResourceResult) -> list[str]:
    return [change.describe() for change in result.changes]


class EventSink:
    """Collects watch events; ``wait_for`` returns once the resource id arrived."""

    def __init__(self):
        self.events: queue.Queue[str] = queue.Queue()

    def __call__(self, resource_id: str) -> None:
        self.events.put(resource_id)

    def drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    def wait_for(self, resource_id: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.events.get(timeout=max(0.01, deadline - time.monotonic())) == resource_id:
                    return True
            except queue.Empty:
                return False
        return False


@contextlib.contextmanager
def watching(driver: Driver, specs: dict[str, dict[str, Any]], ctx: Context, sink: EventSink) -> Iterator[WatchHub]:
    """A watch hub on what ``driver`` declares for ``specs`` (id → validated spec), its touches into ``sink``."""
    hub = WatchHub(lambda touch: [sink(resource_id) for resource_id in touch.resources])
    hub.watch({resource_id: driver.watches(spec, ctx) for resource_id, spec in specs.items()})
    try:
        yield hub
    finally:
        hub.stop()
