"""How much of a node's report the coordinator keeps: a node may be compromised, and what it reports ends up in
the inventory, in every table ``nodeagentctl`` prints, in webhooks and notifications.

A report is read as a ``messages.Report`` first (its shape checked, or refused naming the field); ``bound``
then cuts what no agent sends: more events than a report carries, texts longer than an operator reads,
characters that are not text (a newline in an event type forges a line of output, an escape sequence
rewrites a terminal), facts and health too large to be facts. What was cut is said once, so the intake
can record it (once per node per window) without storing the flood.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from nodeagent.wire.messages import DriftChange, DriftEvent, Event, Report

MAX_EVENTS = 200  # an agent sends at most 100 a report (drift.Spool.pending)
MAX_TEXT = 4000  # characters of a detail, an error, a drifted field's found or expected value
MAX_CHANGES = 100  # changed fields of one drift
MAX_NAMES = 1000  # resources named in a status list (failed, drifted, contested)
MAX_JSON = 256 * 1024  # characters of the facts or the health, as JSON
_TYPE_CHARACTERS = re.compile(r"[^A-Za-z0-9._:-]")  # what an event type is made of ("drift.corrected")
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # control characters but tab and newline


def bound(report: Report) -> tuple[Report, list[str]]:
    """The report as the coordinator keeps it, and what was cut (empty when nothing was)."""
    cut: list[str] = []
    events = report.events
    if len(events) > MAX_EVENTS:
        cut.append(f"{len(events)} events, {MAX_EVENTS} kept")
        events = events[:MAX_EVENTS]
    kept = tuple(_event(event) for event in events)
    if kept != events:
        cut.append("event texts cut or cleaned (size, control characters, type characters)")
    status = report.status
    names = {name: getattr(status, name) for name in ("failed", "drifted", "contested")}
    if any(len(value) > MAX_NAMES for value in names.values()) or len(status.counts) > 32:
        cut.append(f"status lists past {MAX_NAMES} names")
        status = replace(status, counts=dict(list(status.counts.items())[:32]),
                         **{name: value[:MAX_NAMES] for name, value in names.items()})
    facts, health = report.facts, report.health
    if facts is not None and _too_large(facts):
        cut.append(f"facts larger than {MAX_JSON} characters, not kept")
        facts = None
    if _too_large(health):
        cut.append(f"health larger than {MAX_JSON} characters, not kept")
        health = {}
    return replace(report, events=kept, status=status, facts=facts, health=health), cut


def text(value: str, most: int = MAX_TEXT) -> str:
    """``value`` with control characters (but tab and newline) shown as U+FFFD, cut at ``most`` characters."""
    cleaned = _NOT_TEXT.sub("\ufffd", value)
    return cleaned if len(cleaned) <= most else f"{cleaned[:most]}... ({len(cleaned) - most} characters cut)"


def _event(event: Event) -> Event:
    drift = event.drift
    if drift is not None:
        drift = _drift(drift)
    return replace(event, type=_TYPE_CHARACTERS.sub("_", event.type), detail=text(event.detail), drift=drift)


def _drift(drift: DriftEvent) -> DriftEvent:
    changes = tuple(DriftChange(field=text(c.field, 256), expected=_maybe(c.expected), found=_maybe(c.found))
                    for c in drift.changes[:MAX_CHANGES])
    by = drift.by
    if by is not None:  # a hostile node's writer must not forge lines or escape sequences either
        by = replace(by, command=_line(by.command), executable=_line(by.executable), unit=_line(by.unit),
                     user=_line(by.user), unknown=_line(by.unknown), parents=tuple(_line(p) for p in by.parents[:16]))
    return replace(drift, resource=text(drift.resource).replace("\n", "\ufffd"), changes=changes,
                   error=_maybe(drift.error), by=by)


def _line(value: str | None) -> str | None:
    return None if value is None else text(value, 1024).replace("\n", "\ufffd")


def _maybe(value: str | None) -> str | None:
    return None if value is None else text(value)


def _too_large(value: Any) -> bool:
    return len(json.dumps(value)) > MAX_JSON
