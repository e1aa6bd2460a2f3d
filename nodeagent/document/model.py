"""The desired-state document: parsing, validation and dependency order.

Everything here is checked before anything on the node is touched, and every
error names the resource and the field.
"""

from __future__ import annotations

import copy
import heapq
import re
import string
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from nodeagent.document import loading
from nodeagent.document.probes import Probe, parse_probes, parse_rollback_timeout
from nodeagent.kit.errors import InvalidDocument, InvalidResource, preview
from nodeagent.document.registry import DriverRegistry

MODES = ("enforce", "monitor")
MAX_GENERATION = 2**63 - 1  # what SQL's BIGINT holds
DOCUMENT_FIELDS = ("node", "generation", "mode", "openstack_release", "probes", "rollback_timeout", "resources")
COMMON_FIELDS = ("id", "driver", "after", "notify", "sensitive", "mode")
NODE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}"  # a host name
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}"


def fold_host(name: str) -> str:
    """A host name as DNS compares it (RFC 4343): ASCII letters in lower case, nothing else changed. Names are
    folded where they enter (a node's configuration, a request read): ``RELNODE1`` is ``relnode1``."""
    return name.translate(_ASCII_LOWER)


@dataclass(frozen=True)
class Resource:
    """One thing a driver keeps true; ``spec`` holds the driver's own fields, normalised."""

    id: str
    driver: str
    spec: dict[str, Any]
    after: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()
    sensitive: tuple[str, ...] | bool = ()
    mode: str | None = None
    secrets: tuple[str, ...] = field(default=(), compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The resource as its author wrote it: parsing it again gives the same resource."""
        return copied(self.raw)


@dataclass(frozen=True)
class Document:
    """A node's whole desired state at one generation."""

    node: str
    generation: int
    mode: str
    resources: tuple[Resource, ...]
    order: tuple[str, ...] = field(default=(), compare=False)
    openstack_release: str | None = None  # the release whose option names the ini resources are checked against
    probes: tuple[Probe, ...] = ()  # what must still answer after its network resources change (``probes``)
    rollback_timeout: float | None = None  # seconds the probes get after a change (None: the agent's option)

    def resource(self, resource_id: str) -> Resource:
        return next(r for r in self.resources if r.id == resource_id)

    def mode_of(self, resource: Resource) -> str:
        return resource.mode or self.mode

    def predecessors(self, resource_id: str) -> list[str]:
        """Resources that must be in place first: its ``after`` list and those that notify it."""
        found = list(self.resource(resource_id).after)
        found += [r.id for r in self.resources if resource_id in r.notify]
        return found

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"openstack_release": self.openstack_release} if self.openstack_release else {}
        if self.probes:
            extra["probes"] = [probe.to_dict() for probe in self.probes]
        if self.rollback_timeout is not None:
            extra["rollback_timeout"] = self.rollback_timeout
        return {"node": self.node, "generation": self.generation, "mode": self.mode, **extra,
                "resources": [r.to_dict() for r in self.resources]}


def copied(value: Any) -> Any:
    """A deep copy of decoded values (dicts, lists, strings, numbers), four times quicker than copy.deepcopy,
    which keeps for anything else; a part shared twice is copied twice. Only for values ``check_shape`` passed
    (none contains itself)."""
    kind = type(value)
    if kind is dict:
        return {key: copied(item) for key, item in value.items()}
    if kind is list:
        return [copied(item) for item in value]
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value)


_ATOMS = {str, int, float, bool, type(None)}


def load_document(path: str | Path, registry: DriverRegistry) -> Document:
    """Read a YAML or JSON document from a file (with the limits of ``loading``) and validate it."""
    return parse_document(loading.load_file(path), registry)


def parse_document(raw: Any, registry: DriverRegistry) -> Document:
    """Validate a document already decoded into Python values."""
    loading.check_shape(raw, "document")
    if not isinstance(raw, dict):
        raise InvalidDocument(f"document must be a mapping with node, generation and resources, got {type(raw).__name__}")
    unknown = set(raw) - set(DOCUMENT_FIELDS)
    if unknown:
        raise InvalidDocument(f"document: unknown field(s) {', '.join(sorted(map(str, unknown)))}"
                              f" (known: {', '.join(DOCUMENT_FIELDS)})")
    node = raw.get("node")
    if not isinstance(node, str) or not re.fullmatch(NODE_PATTERN, node):
        raise InvalidDocument(f"document: field 'node' must be a host name, got {preview(node)}")
    generation = raw.get("generation", 0)
    if isinstance(generation, bool) or not isinstance(generation, int) or not 0 <= generation <= MAX_GENERATION:
        raise InvalidDocument(f"document: field 'generation' must be a non-negative integer "
                              f"(at most {MAX_GENERATION}), "
                              f"got {preview(generation)}")
    mode = raw.get("mode", "enforce")
    if mode not in MODES:
        raise InvalidDocument(f"document: field 'mode' must be one of {', '.join(MODES)}, got {preview(mode)}")
    release = raw.get("openstack_release")
    if release is not None and not re.fullmatch(r"\d{4}\.\d", str(release)):
        raise InvalidDocument(f"document: field 'openstack_release' must look like 2024.2 or 2025.1, got {preview(release)}")
    probes = parse_probes(raw.get("probes"))
    rollback_timeout = parse_rollback_timeout(raw.get("rollback_timeout"))
    entries = raw.get("resources")
    if not isinstance(entries, list):
        raise InvalidDocument(f"document: field 'resources' must be a list, got {preview(entries)}")

    resources: list[Resource] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        resource = _parse_resource(index, entry, registry)
        if resource.id in seen:
            raise InvalidDocument(f"resource '{resource.id}': duplicate id (ids must be unique in a document)")
        seen.add(resource.id)
        resources.append(resource)
    _check_edges(resources, registry)
    document = Document(node, generation, mode, tuple(resources))
    return Document(node, generation, mode, tuple(resources), tuple(_order(document, registry)),
                    str(release) if release is not None else None, probes, rollback_timeout)


def _parse_resource(index: int, entry: Any, registry: DriverRegistry) -> Resource:
    if not isinstance(entry, dict):
        raise InvalidDocument(f"resources[{index}] must be a mapping with id and driver, got {preview(entry)}")
    resource_id = entry.get("id")
    if not isinstance(resource_id, str) or not re.fullmatch(_ID_PATTERN, resource_id):
        raise InvalidDocument(f"resources[{index}]: field 'id' must be a name of letters, digits and '_.:@-', "
                              f"got {preview(resource_id)}")
    try:
        driver = registry.get(entry.get("driver"))
        after = _id_list(entry, "after")
        notify = _id_list(entry, "notify")
        mode = entry.get("mode")
        if mode is not None and mode not in MODES:
            raise InvalidResource("mode", f"must be one of {', '.join(MODES)}, got {preview(mode)}")
        spec = driver.validate({k: v for k, v in entry.items() if k not in COMMON_FIELDS})
        sensitive, secrets = _sensitive(entry.get("sensitive", ()), driver, spec)
    except InvalidResource as exc:
        raise exc.with_resource(resource_id) from None
    return Resource(resource_id, driver.name, spec, after, notify, sensitive, mode, secrets, copied(entry))


def _id_list(entry: dict[str, Any], name: str) -> tuple[str, ...]:
    value = entry.get(name, [])
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidResource(name, f"must be a list of resource ids, got {preview(value)}")
    return tuple(value)


def _sensitive(value: Any, driver: Any, spec: dict[str, Any]) -> tuple[tuple[str, ...] | bool, tuple[str, ...]]:
    """Which fields are secret, and their values, so they can be masked in any text."""
    if value is True:
        # Every change of such a resource is masked whole; its values are also
        # scrubbed from error texts, except tiny ones ("1", "true") that would
        # mangle messages without hiding anything.
        secrets = [str(v) for v in driver.sensitive_leaves(spec)]
        return True, tuple(s for s in secrets if len(s) >= 4)
    if value is False:
        return (), ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InvalidResource("sensitive", f"must be true or a list of field names, got {preview(value)}")
    secrets: list[str] = []
    for name in value:
        secrets += driver.secret_values(spec, name)
    return tuple(value), tuple(s for s in secrets if s)


def _check_edges(resources: list[Resource], registry: DriverRegistry) -> None:
    by_id = {r.id: r for r in resources}
    for resource in resources:
        for name in ("after", "notify"):
            for target in getattr(resource, name):
                if target not in by_id:
                    raise InvalidDocument(f"resource '{resource.id}': field '{name}' names '{target}', "
                                          "which is not a resource of this document")
                if target == resource.id:
                    raise InvalidDocument(f"resource '{resource.id}': field '{name}' names the resource itself")
        for target in resource.notify:
            if not registry.get(by_id[target].driver).notifiable:
                raise InvalidDocument(f"resource '{resource.id}': field 'notify' names '{target}', whose driver "
                                      f"'{by_id[target].driver}' cannot be notified")


def _order(document: Document, registry: DriverRegistry) -> list[str]:
    """Dependency order; among resources free to go, the driver's phase and then document order."""
    index = {r.id: i for i, r in enumerate(document.resources)}
    by_id = {r.id: r for r in document.resources}
    notifiers: dict[str, list[str]] = {}  # Document.predecessors for every resource at once: one pass, not one each
    for resource in document.resources:
        for target in dict.fromkeys(resource.notify):  # named twice, it is still one predecessor
            notifiers.setdefault(target, []).append(resource.id)
    sorter = TopologicalSorter({r.id: [*r.after, *notifiers.get(r.id, ())] for r in document.resources})
    try:
        sorter.prepare()
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise InvalidDocument(f"document: dependency cycle between resources: {cycle}") from None
    ready: list[tuple[int, int, str]] = []
    order: list[str] = []
    while sorter.is_active():
        for resource_id in sorter.get_ready():
            phase = registry.get(by_id[resource_id].driver).phase
            heapq.heappush(ready, (phase, index[resource_id], resource_id))
        _, _, resource_id = heapq.heappop(ready)
        order.append(resource_id)
        sorter.done(resource_id)
    return order
