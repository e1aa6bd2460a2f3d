"""The intake of plain heartbeats: many in one transaction, in a few Core statements.

A plain heartbeat carries no events and no facts, and comes from a live accepted node signed by its accepted
key: nearly every report is one. Agents send them as casts on their own topic, which the coordinators take in
batches (``wire.rpc.heartbeat_listener``); a report called the usual way that turns out plain is a batch of
one. The ORM's session, identity map and unit of work cost three quarters of the intake's CPU
(``benchmarks/report_path.py``), and one transaction per heartbeat its commit: here a batch costs one read of
its nodes, its sequences taken (a replay is refused, and two coordinators handed the same heartbeat cannot
both accept it: a conditional update each, or on PostgreSQL and MariaDB one update for the batch, whose trust
rows it locks), the nodes' rows locked unless a change holds them, and one write per set of changed columns.

Whatever is not plain (a first contact, a node coming back, events, facts, a new key) goes to the full intake
(``fleet.reports``); a cast heartbeat that is not plain has no answer to carry, so its node is asked for a full
report instead, as is a node holding an older generation than it should (a push it missed).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import bindparam, select, update

from nodeagent.fleet import reportbounds
from nodeagent.fleet.inventory import DriftRecord, Node, NodeTrust, StateDocument
from nodeagent.wire import messages
from nodeagent.wire.protocol import CoordinatorChannel, NodeRequest, Refused, Replayed


@dataclass
class Heartbeat:
    """What became of one heartbeat: taken (``answer``), refused (``refused``; ``verified``: its sequence was
    spent, so a call gets a signed refusal), or not plain (neither: the full intake takes it)."""

    sealed: Any
    host: str | None
    answer: messages.ReportAnswer | None = None
    refused: Refused | None = None
    verified: bool = False
    cut: list[str] = field(default_factory=list)
    behind: bool = False  # the node holds an older generation than it should: ask it for a full report
    age: float | None = None  # set when it was sent longer ago than the batch's max_age: dropped, not taken
    superseded: bool = False  # cast, and a later report of its node was taken first: dropped, not refused

    @property
    def plain(self) -> bool:
        return self.answer is not None or self.refused is not None or self.age is not None or self.superseded


class HeartbeatIntake:
    """Takes batches of plain heartbeats; ``in_sync(host, status)`` is told each status taken."""

    def __init__(self, engine: Any, in_sync: Callable[[str, messages.AgentStatus], None], push_grace: float = 0,
                 health_refresh: float = 0):
        """``push_grace``: seconds a stored document may take to reach its node before the node counts as behind
        (a push in flight, or waiting in the node's queue, is not a push missed); ``health_refresh``: seconds a
        node's stored load, CPU, memory and disk figures may age before a heartbeat stores them again."""
        self.engine = engine
        self.in_sync = in_sync
        self.push_grace = push_grace
        self.health_refresh = health_refresh

    def take(self, batch: list[Any], max_age: float | None = None, cast: bool = False) -> list[Heartbeat]:
        """Each sealed heartbeat of ``batch``, taken in one transaction when plain; in the order given. One sent
        more than ``max_age`` seconds ago (queued while no coordinator was there) is dropped: taken, it would
        make a node heard that may have died since. ``cast``: agents cast only under their accepted key, so
        another key is refused (called, it may be a new key, for the full intake)."""
        beats = [Heartbeat(sealed, CoordinatorChannel.sender(sealed)) for sealed in batch]
        if max_age is not None:
            for beat in beats:
                age = _age(beat.sealed)
                if age is not None and age > max_age:
                    beat.age = age
        candidates = [beat for beat in beats
                      if beat.host is not None and beat.age is None and _looks_plain(beat.sealed)]
        if not candidates:
            return beats
        taken: list[tuple[Heartbeat, messages.Report, Any]] = []
        with self.engine.begin() as connection:
            hosts = sorted({beat.host for beat in candidates})
            # Cast: a row another transaction holds (another coordinator taking a report of the same node, or a
            # hung one) is passed over, never waited for: that heartbeat is lost, the next one comes. Called: the
            # full intake would wait for it anyway (up to database_lock_timeout).
            free = set(connection.scalars(*_for(_TRUST_ROWS, hosts))) if cast else set(hosts)
            known = {row.name: row for row in connection.execute(*_for(_KNOWN, hosts))}
            # Cast on PostgreSQL or MariaDB, the trust rows are this transaction's: the sequences just read are
            # the last taken, and the new ones are written together. Else each is a conditional update.
            spends: list[dict[str, Any]] | None = [] if cast and connection.dialect.name != "sqlite" else None
            taken_seq: dict[str, int] = {}  # a node's sequence taken earlier in this batch
            for beat in candidates:
                node = known.get(beat.host)
                if beat.host not in free or not _plain_for(node, beat.sealed, cast):
                    continue
                report = self._verified(connection, beat, node, cast, taken_seq, spends)
                if report is not None:
                    taken.append((beat, report, node))
            for rows in _by_columns(spends or []):
                connection.execute(_SPEND_HELD, rows)
            self._write(connection, taken)
        behind = {}
        for beat, report, node in taken:
            self.in_sync(beat.host, report.status)
            held = report.held if report.held is not None else report.status.generation
            if (node.desired_generation or 0) > held:
                behind[beat.host] = node.desired_generation
            beat.answer = messages.ReportAnswer(status="alive", desired_generation=node.desired_generation)
        missed = self._missed(behind) if behind else set()
        for beat, _, _ in taken:
            beat.behind = beat.host in missed
        return beats

    def _missed(self, behind: dict[str, int]) -> set[str]:
        """The nodes of ``behind`` (host: desired generation) whose document was stored longer ago than the push
        grace: during a change every node's heartbeat may come between the store and the push's arrival."""
        deadline = time.time() - self.push_grace
        with self.engine.connect() as connection:
            stored = {(row.node, row.generation): row.created_at for row in connection.execute(
                _STORED_AT, {"names": sorted(behind), "generations": sorted(set(behind.values()))})}
        return {host for host, generation in behind.items() if stored.get((host, generation), 0) <= deadline}

    def _verified(self, connection: Any, beat: Heartbeat, node: Any, cast: bool, taken_seq: dict[str, int],
                  spends: list[dict[str, Any]] | None) -> messages.Report | None:
        """The heartbeat's report if its signature verifies, its sequence is fresh (then spent, or added to
        ``spends`` to be written with the batch's) and it reads; else None, with the refusal recorded on ``beat``.
        A cast one whose sequence was passed is superseded, not refused: casts and calls travel by different
        queues, and a later call may be taken first."""
        try:
            request = CoordinatorChannel.read_request(beat.sealed, node.public_key, enrol=False)
            if request.rekeyed:
                raise Refused("a new key is presented in a called report, not in a heartbeat cast")
            try:
                last = taken_seq.get(beat.host, node.sequence)
                if spends is None:
                    spend(connection, request, last, node.box_key)
                else:
                    spends.append(_spent(request, last, node.box_key))
                taken_seq[beat.host] = request.seq
            except Replayed:
                if not cast:
                    raise
                beat.superseded = True
                return None
            beat.verified = True
            report, beat.cut = reportbounds.bound(messages.Report.from_dict(request.payload))
            return report
        except Refused as refused:  # a Malformed report too; recorded by the caller once the transaction is over
            beat.refused = refused
            return None

    def _write(self, connection: Any, taken: list[tuple[Heartbeat, messages.Report, Any]]) -> None:
        """Each node's row where something worth storing moved (``_row_changes``), unless a change's transaction
        holds it (the node is heard already: its sequence's row; the next heartbeat brings its status again):
        only the columns that changed, one statement per set of them. A heartbeat that moves nothing writes no
        node row."""
        now = time.time()
        last = {beat.host: (report, node) for beat, report, node in taken}  # the later of a node's two
        changes = {host: _row_changes(report, node, now, self.health_refresh) for host, (report, node) in last.items()}
        changes = {host: changed for host, changed in changes.items() if changed}
        if not changes:
            return
        free = set(connection.scalars(*_for(_NODE_ROWS, sorted(changes))))
        writes: list[dict[str, Any]] = []
        for host, changed in changes.items():
            if host not in free:
                continue
            writes.append({"host": host, **changed})
            report, node = last[host]
            if "status" in changed and open_problems(node.status or {}) != open_problems(changed["status"]):
                connection.execute(close_resolved_drift(host, report.status))
        for rows in _by_columns(writes):
            connection.execute(_HEARTBEAT, rows)


def _row_changes(report: messages.Report, node: Any, now: float, health_refresh: float) -> dict[str, Any]:
    """The node row's columns a plain heartbeat changes: its status when it moved; its health when its services
    moved, or with a status that moved, or when the stored figures are older than ``health_refresh`` (load and
    CPU move at every heartbeat: written each time they would cost every heartbeat a row write)."""
    changed: dict[str, Any] = {}
    status = report.status.to_dict()
    if status != node.status:
        changed.update(status=status, observed_generation=report.status.generation)
    health = report.health
    if health != node.health:
        services_moved = (health or {}).get("services") != (node.health or {}).get("services")
        stale = node.last_heartbeat is None or now - node.last_heartbeat >= health_refresh
        if changed or services_moved or stale:
            changed.update(health=health, last_heartbeat=now)
    return changed


def spend(connection: Any, request: NodeRequest, last: int, box_key: str | None) -> None:
    """Take the request's sequence, if no coordinator took it or a later one: a conditional update (which also
    records the node heard), so two coordinators given the same replayed request cannot both accept it."""
    values = _spent(request, last, box_key)
    if connection.execute(_SPEND, {**values, "above": values["sequence"]}).rowcount != 1:
        raise Replayed(f"replayed: sequence {values['sequence']} was taken meanwhile")


def _spent(request: NodeRequest, last: int, box_key: str | None) -> dict[str, Any]:
    """The trust row's new values for a fresh request (Replayed when its sequence is not above ``last``)."""
    values = {"host": request.host, "sequence": request.check_fresh(last), "heard_at": time.time()}
    if request.box_key is not None and request.box_key != box_key:
        values["box_key"] = request.box_key
    return values


def _by_columns(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows (each naming its ``host``) grouped by the columns they set: one statement, with many parameter sets,
    per group. A node's later rows are merged into its first (its sequence taken twice in one batch, the second
    without the encryption key the first brought): statements of different groups would otherwise write its
    columns out of order."""
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        merged[row["host"]] = {**merged.get(row["host"], {}), **row}
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in merged.values():
        groups[tuple(sorted(row))].append(row)
    return list(groups.values())


def close_resolved_drift(host: str, status: messages.AgentStatus) -> Any:
    """A drift left alone (monitor), contested or failed is closed once the node no longer reports it."""
    still = {*status.drifted, *status.failed, *status.contested}
    return update(DriftRecord.__table__).where(
        DriftRecord.node == host, DriftRecord.fixed_at.is_(None), DriftRecord.closed_at.is_(None),
        DriftRecord.resource.not_in(still)).values(closed_at=time.time())


def open_problems(status: dict[str, Any]) -> tuple:
    """What a node's status says is drifted, failed or contested (a drift record closes when it leaves these)."""
    return tuple(sorted(status.get(key) or ()) for key in ("drifted", "failed", "contested"))


def _looks_plain(sealed: Any) -> bool:
    payload = sealed.get("payload") if isinstance(sealed, dict) else None
    return isinstance(payload, dict) and not payload.get("events") and payload.get("facts") is None


def _age(sealed: dict[str, Any]) -> float | None:
    """Seconds since the node says it sent the message (clocks agree across a fleet: pushes rely on it too)."""
    sent_at = sealed["payload"].get("sent_at") if _looks_plain(sealed) else None
    if isinstance(sent_at, bool) or not isinstance(sent_at, (int, float)):
        return None
    return time.time() - sent_at


def _plain_for(node: Any, sealed: dict[str, Any], cast: bool) -> bool:
    """Whether the node is one a plain heartbeat can be taken from: live, accepted, under its accepted key."""
    return node is not None and node.enrolment == "accepted" and bool(node.alive) and node.sequence is not None \
        and (cast or sealed.get("key") in (None, "", node.public_key))


def _by_name(column: Any, query: Callable[[Any], Any]) -> tuple[Any, Any]:
    """The statement for one node (a called report) and for many (a batch): an expanding IN is rendered again at
    each execution, which cost a called heartbeat a sixth of its CPU."""
    return query(column == bindparam("name")), query(column.in_(bindparam("names", expanding=True)))


def _for(statements: tuple[Any, Any], hosts: list[str]) -> tuple[Any, dict[str, Any]]:
    return (statements[0], {"name": hosts[0]}) if len(hosts) == 1 else (statements[1], {"names": hosts})


# The statements, made once (making them is a third of their cost).
_TRUST_ROWS = _by_name(NodeTrust.name, lambda where: select(NodeTrust.name).where(where)
                       .with_for_update(skip_locked=True))
_KNOWN = _by_name(Node.name, lambda where: select(
    Node.name, Node.public_key, Node.enrolment, Node.alive, Node.health, Node.status, Node.desired_generation,
    Node.last_heartbeat, NodeTrust.sequence, NodeTrust.box_key).outerjoin(NodeTrust, NodeTrust.name == Node.name)
    .where(where))
_SPEND = update(NodeTrust.__table__).where(NodeTrust.name == bindparam("host"),
                                           NodeTrust.sequence < bindparam("above"))
_SPEND_HELD = update(NodeTrust.__table__).where(NodeTrust.name == bindparam("host"))  # its row locked by the batch
_HEARTBEAT = update(Node.__table__).where(Node.name == bindparam("host"))
_STORED_AT = select(StateDocument.node, StateDocument.generation, StateDocument.created_at).where(
    StateDocument.node.in_(bindparam("names", expanding=True)),
    StateDocument.generation.in_(bindparam("generations", expanding=True)))
_NODE_ROWS = _by_name(Node.name, lambda where: select(Node.name).where(where).with_for_update(skip_locked=True))
