"""The web view's pages: each a GET view over the inventory and its template in ``templates/``.

Adding a page: a view function here (or in a module of its own registering on ``pages``), its template, and one
line in ``NAV``. Nothing here writes: every page reads the inventory, which several coordinators share, so each
serves the same view. What a page shows of drift is what the agents sent, redacted at the source as
``nodeagentctl drift list`` shows it (``reports.drift_event``); a document's settings are never shown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from flask import Blueprint, abort, current_app, render_template, request

from nodeagent.fleet import nodequery, rollouts as rollout_state
from nodeagent.fleet.errors import InvalidInput, NotFound
from nodeagent.fleet.inventory import DriftRecord, Inventory, Node
from nodeagent.fleet.reports import drift_event
from nodeagent.fleet.web import timeline

pages = Blueprint("pages", __name__)

# The navigation bar: (endpoint, title), in order.
NAV = [("pages.fleet", "Fleet"), ("pages.drift_timeline", "Drift timeline"), ("pages.events", "Events"),
       ("pages.rollouts", "Rollouts")]
HOURS = (1, 6, 24, 168)  # the timeline's windows
TIMELINE_LIMIT = 5000  # drift records a timeline draws at most (the newest of its window)
RESOURCE_TARGET = ("path", "name", "interface", "module")  # what a resource acts on, by driver; never settings


@dataclass(frozen=True)
class Sources:
    """What the pages read: the inventory, the Neutron column (None when verification is off), the refresh."""

    inventory: Inventory
    neutron: Callable[[], Callable[[str], str] | None]
    refresh: int


def sources() -> Sources:
    return current_app.extensions["nodeagent"]


@pages.get("/")
def fleet() -> str:
    chosen = _node_filter(request.args)
    inventory = sources().inventory
    rows = nodequery.select(inventory, chosen)
    roles = sorted({role for node in inventory.nodes() for role in node.roles or []})
    return render_template("fleet.html", rows=rows, chosen=chosen, roles=roles, states=nodequery.STATES,
                           sorts=sorted(nodequery.SORT_KEYS), neutron=sources().neutron(), health=health_line,
                           in_sync=in_sync)


def _node_filter(args: Any) -> nodequery.NodeFilter:
    """The fleet page's query string as ``node list``'s filters; a wrong value is an error naming it."""
    state = args.get("state") or None
    if state is not None and state not in nodequery.STATES:
        raise InvalidInput(f"state '{state}' is not one of {', '.join(nodequery.STATES)}")
    sort = args.get("sort") or "host"
    if sort not in nodequery.SORT_KEYS:
        raise InvalidInput(f"sort '{sort}' is not one of {', '.join(sorted(nodequery.SORT_KEYS))}")
    alive = args.get("alive") or ""
    if alive not in ("", "up", "down"):
        raise InvalidInput(f"alive '{alive}' is not one of up, down")
    return nodequery.NodeFilter(args.get("role") or None, state, args.get("drifted") == "on",
                                {"up": True, "down": False}.get(alive), sort)


def health_line(node: Node) -> str:
    """``load 0.4 · cpu 3% · mem 41% · 3/4 services``: the node's last reported health."""
    health = node.health or {}
    if not health:
        return ""
    parts = []
    if health.get("load"):
        parts.append(f"load {health['load'][0]}")
    if "cpu_percent" in health:
        parts.append(f"cpu {health['cpu_percent']:.0f}%")
    if "memory_percent" in health:
        parts.append(f"mem {health['memory_percent']:.0f}%")
    services = health.get("services") or {}
    if services:
        parts.append(f"{sum(1 for up in services.values() if up)}/{len(services)} services")
    return " · ".join(parts)


def in_sync(node: Node) -> str:
    """``5/6``: resources in sync (or just corrected) of all the node reported; '' before its first report."""
    counts = (node.status or {}).get("counts") or {}
    total = sum(counts.values())
    return f"{counts.get('in_sync', 0) + counts.get('changed', 0)}/{total}" if total else ""


@pages.get("/nodes/<name>")
def node(name: str) -> str:
    inventory = sources().inventory
    found = inventory.node(name)
    if found is None:
        abort(404, f"no node '{name}'")
    document = inventory.document(name)
    drift = [drift_event(record) for record in _newest_first(inventory.drift(name, limit=200))]
    return render_template("node.html", node=found, resources=resource_rows(found, document.body if document else None),
                           drift=drift, last=drift[0] if drift else None,
                           events=list(reversed(inventory.events(name, limit=50))), health=health_line,
                           in_sync=in_sync)


def resource_rows(node: Node, body: dict[str, Any] | None) -> list[dict[str, str]]:
    """Each resource of the node's latest document: its id, driver, what it acts on, and its state from the
    node's last report. Settings and contents are left out: they hold the secrets."""
    status = node.status or {}
    reported = status.get("reconciled_generation", 0) >= (body or {}).get("generation", 0)
    rows = []
    for resource in (body or {}).get("resources") or []:
        rid = resource.get("id", "")
        state = "failed" if rid in (status.get("failed") or ()) else \
            "contested" if rid in (status.get("contested") or ()) else \
            "drifted" if rid in (status.get("drifted") or ()) else "in sync" if reported else "not yet applied"
        target = next((str(resource[key]) for key in RESOURCE_TARGET if key in resource), "")
        rows.append({"id": rid, "driver": resource.get("driver", ""), "target": target, "state": state})
    return rows


@pages.get("/timeline")
def drift_timeline() -> str:
    hours = request.args.get("hours", "6")
    if hours not in {str(h) for h in HOURS}:
        raise InvalidInput(f"hours '{hours}' is not one of {', '.join(map(str, HOURS))}")
    end = time.time()
    start = end - int(hours) * 3600
    records = sources().inventory.drift(since=start, limit=TIMELINE_LIMIT)
    return render_template("timeline.html", plot=timeline.plot(records, start, end), hours=int(hours),
                           limited=TIMELINE_LIMIT if len(records) >= TIMELINE_LIMIT else None,
                           choices=HOURS, colours=timeline.COLOURS,
                           drift=[drift_event(record) for record in _newest_first(records)[:200]])


def _newest_first(records: list[DriftRecord]) -> list[DriftRecord]:
    return sorted(records, key=lambda record: record.seen_at, reverse=True)


@pages.get("/events")
def events() -> str:
    node = (request.args.get("node") or "").lower() or None  # folded as agents' names are
    kind = request.args.get("type") or None
    found = sources().inventory.events(node, kind, 500)
    return render_template("events.html", events=list(reversed(found)), node=node or "", kind=kind or "")


@pages.get("/rollouts")
def rollouts() -> str:
    return render_template("rollouts.html", rollouts=rollout_state.listed(sources().inventory))


@pages.get("/rollouts/<int:number>")
def rollout(number: int) -> str:
    try:
        found, nodes = rollout_state.shown(sources().inventory, number)
    except NotFound as exc:
        abort(404, str(exc))
    counted = [row for row in nodes if row.state != rollout_state.SUPERSEDED]
    done = sum(row.state == rollout_state.DONE for row in counted)
    return render_template("rollout.html", rollout=found, nodes=counted, done=done,
                           percent=round(100 * done / len(counted)) if counted else 100)
