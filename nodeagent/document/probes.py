"""A document's probes and its rollback timeout: what must still answer after a network change.

Example (top level of a desired-state document)::

    probes:
      - {id: gw, ping: 198.18.0.1}              # an ICMP echo answered
      - {id: neutron-api, tcp: "controller:9696"}  # a TCP connection accepted
    rollback_timeout: 30                         # seconds; the agent option rollback_timeout otherwise

The agent runs them before it applies network resources and again after; only those that passed before count.
Everything is checked here, before anything on the node is touched: an error names the probe and the field.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from nodeagent.kit.errors import InvalidDocument, preview

KINDS = ("ping", "tcp")
BROKER = "broker"  # the implicit probe of an agent with a coordinator: its broker accepts a connection
MAX_PROBES = 32
MAX_TIMEOUT = 3600
_ID = r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}"
_HOST = r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"


@dataclass(frozen=True)
class Probe:
    """One check: ``ping`` an address (``port`` None) or open a ``tcp`` connection to ``host:port``."""

    id: str
    kind: str
    host: str
    port: int | None = None

    def target(self) -> str:
        """As the document writes it: ``198.18.0.1`` or ``controller:9696`` (``[2001:db8::1]:443``)."""
        if self.port is None:
            return self.host
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, self.kind: self.target()}

    def describe(self) -> str:
        return f"{self.id} ({self.kind} {self.target()})"


def parse_probes(raw: Any) -> tuple[Probe, ...]:
    """The document's ``probes`` list, checked; InvalidDocument names the probe and the field."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidDocument(f"document: field 'probes' must be a list of probes, got {preview(raw)}")
    if len(raw) > MAX_PROBES:
        raise InvalidDocument(f"document: field 'probes' lists {len(raw)} probes, more than {MAX_PROBES}")
    probes: list[Probe] = []
    for index, entry in enumerate(raw):
        probe = _parse_one(index, entry)
        if probe.id == BROKER or probe.id in {p.id for p in probes}:
            taken = "is the agent's own broker probe" if probe.id == BROKER else "is used twice"
            raise InvalidDocument(f"probe '{probe.id}' (probes[{index}]): field 'id' {taken}")
        probes.append(probe)
    return tuple(probes)


def parse_rollback_timeout(raw: Any) -> float | None:
    """``rollback_timeout`` in seconds (None: the agent's option)."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 1 <= raw <= MAX_TIMEOUT:
        raise InvalidDocument(f"document: field 'rollback_timeout' must be a number of seconds from 1 to "
                              f"{MAX_TIMEOUT}, got {preview(raw)}")
    return float(raw)


def _parse_one(index: int, entry: Any) -> Probe:
    where = f"probes[{index}]"
    if not isinstance(entry, dict):
        raise InvalidDocument(f"{where} must be a mapping such as {{id: gw, ping: 198.18.0.1}}, got {preview(entry)}")
    probe_id = entry.get("id")
    if not isinstance(probe_id, str) or not re.fullmatch(_ID, probe_id):
        raise InvalidDocument(f"{where}: field 'id' must be a name of letters, digits and '_.:@-', "
                              f"got {preview(probe_id)}")
    named = f"probe '{probe_id}' ({where})"
    unknown = sorted(str(key) for key in entry if key not in ("id", *KINDS))
    if unknown:
        raise InvalidDocument(f"{named}: unknown field '{unknown[0]}' (known: id, {', '.join(KINDS)})")
    kinds = [kind for kind in KINDS if kind in entry]
    if len(kinds) != 1:
        raise InvalidDocument(f"{named}: needs exactly one of the fields {', '.join(KINDS)}, got "
                              f"{', '.join(kinds) or 'none'}")
    kind = kinds[0]
    value = entry[kind]
    if kind == "ping":
        return Probe(probe_id, kind, _host(value, named, kind, "an address or host name, such as 198.18.0.1"))
    if not isinstance(value, str) or ":" not in value:
        raise InvalidDocument(f"{named}: field 'tcp' must be HOST:PORT, such as controller:9696, got {preview(value)}")
    host, _, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidDocument(f"{named}: field 'tcp' has the port {preview(port)}, not a number from 1 to 65535")
    return Probe(probe_id, kind, _host(host, named, kind, "HOST:PORT, such as controller:9696"), int(port))


def _host(value: Any, named: str, field: str, expected: str) -> str:
    """An IP address, or a host name; a dotted number that is no address (300.1.1.1) is refused."""
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            if re.fullmatch(_HOST, value) and not re.fullmatch(r"[0-9.]+", value):
                return value
    raise InvalidDocument(f"{named}: field '{field}' must be {expected}, got {preview(value)}")
