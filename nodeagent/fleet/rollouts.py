"""Rollouts: a change reaches its nodes in batches, each batch judged healthy before the next is released.

A rollout gates its nodes: while a node waits for its batch, a converge renders its new document but does not
store it (the node keeps what it runs). Releasing a batch marks its nodes ``rolling`` and converges, which stores
and pushes their documents. A rolling node becomes ``soaking`` once it reports the new generation applied with
nothing failed (and, where the coordinator can ask Neutron, its agents alive); ``done`` after the soak time. A
node that rolls the generation back, fails a resource, goes down, or does not get there within the node timeout
fails the rollout: nothing more is released, the nodes not reached keep what they run (``rollout resume`` after
a fix, ``rollout abort`` to give up). At most ``max_unavailable`` nodes are rolling or soaking at once.

The state lives in the inventory (``rollouts``, ``rollout_nodes``): a coordinator restarted mid-rollout carries
on, and of several coordinators one at a time advances them (the ``rollouts`` lock, taken for one tick).
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nodeagent.fleet.errors import InvalidInput, NotFound
from nodeagent.fleet.inventory import Inventory, Node, Rollout, RolloutNode

if TYPE_CHECKING:
    from nodeagent.fleet.desired import Change, DesiredState
    from nodeagent.fleet.neutroncheck import Verifier
    from nodeagent.fleet.notices import Notices
    from nodeagent.process.metrics import CoordinatorMetrics

LOG = logging.getLogger(__name__)

RUNNING, PAUSED, FAILED, ABORTED, COMPLETED = "running", "paused", "failed", "aborted", "completed"
WAITING, ROLLING, SOAKING, DONE, SUPERSEDED = "waiting", "rolling", "soaking", "done", "superseded"
UNFINISHED = (RUNNING, PAUSED, FAILED)  # a rollout that may still go on (resume)
GATING = (*UNFINISHED, ABORTED)  # its nodes not reached keep what they run until a later rollout takes them
ACTIVE = (ROLLING, SOAKING)  # a node counted as unavailable
NODE_TIMEOUT = 600.0  # seconds a released node may take to report its new generation applied


@dataclass(frozen=True)
class Policy:
    """How a rollout goes: ``canary`` nodes alone first, then ``max_unavailable`` at a time (a count or a
    percentage of the rollout's nodes), each batch healthy for ``soak`` seconds before the next."""

    max_unavailable: str = "1"
    canary: int = 0
    soak: float = 0.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[1-9][0-9]{0,5}%?", self.max_unavailable) or \
                (self.max_unavailable.endswith("%") and int(self.max_unavailable[:-1]) > 100):
            raise InvalidInput(f"rollout: --max-unavailable is '{self.max_unavailable}', not a count of nodes "
                               "(1 or more) or a percentage (1% to 100%)")
        if self.canary < 0:
            raise InvalidInput(f"rollout: --canary is {self.canary}, not 0 or more nodes")
        if not math.isfinite(self.soak) or self.soak < 0:
            raise InvalidInput(f"rollout: --soak is {self.soak}, not 0 or more seconds")

    def batch_size(self, total: int) -> int:
        """How many nodes a batch after the canary holds (at least one)."""
        if self.max_unavailable.endswith("%"):
            return max(1, total * int(self.max_unavailable[:-1]) // 100)
        return int(self.max_unavailable)

    def batches(self, hosts: list[str]) -> list[list[str]]:
        """``hosts`` in batches: the canary first (never more than may be unavailable), then the rest."""
        size = self.batch_size(len(hosts))
        canary = min(self.canary, size, len(hosts))
        first = [hosts[:canary]] if canary else []
        rest = hosts[canary:]
        return first + [rest[i:i + size] for i in range(0, len(rest), size)]


@dataclass(frozen=True)
class Selection:
    """The nodes a rollout may take: those with ``role``, or named by ``nodes`` (names, patterns, a,b), or all."""

    role: str | None = None
    nodes: tuple[str, ...] | None = None

    def describe(self) -> str:
        if self.role:
            return f"role {self.role}"
        return f"nodes {','.join(self.nodes)}" if self.nodes else "all nodes"

    def takes(self, node: Node) -> bool:
        if self.role:
            return self.role in (node.roles or [])
        return self.nodes is None or node.name in self.nodes


def gated(session: Session) -> set[str]:
    """Nodes whose new document waits for their batch: not yet reached by a rollout that did not complete (an
    aborted one too: abort pushes nothing more; 'rollout start' over them, or undoing the change, lets them go)."""
    query = select(RolloutNode.node).join(Rollout, Rollout.id == RolloutNode.rollout).where(
        RolloutNode.state == WAITING, Rollout.state.in_(GATING))
    return set(session.scalars(query))


class Rollouts:
    """Start, pause, resume and abort rollouts; each serve tick ``judge``s their nodes and ``release``s batches."""

    def __init__(self, inventory: Inventory, desired: DesiredState, notices: Notices | None = None,
                 metrics: CoordinatorMetrics | None = None, neutron: Callable[[], Verifier | None] | None = None,
                 node_timeout: float = NODE_TIMEOUT):
        self.inventory = inventory
        self.desired = desired
        self.notices = notices
        self.metrics = metrics
        self.neutron = neutron or (lambda: None)
        self.node_timeout = node_timeout

    # -- starting --------------------------------------------------------------------------------
    def start(self, selection: Selection, policy: Policy, change: Change | None = None, describe: str = ""
              ) -> tuple[int | None, list[tuple[str, int]]]:
        """Make ``change`` (if any) and start a rollout over the selected nodes whose documents it changes, in
        one transaction; the first batch is pushed at once. Returns the rollout's id (None when no selected
        node's document changes and there was a change to make) and the documents pushed."""
        started: list[int] = []

        def stage(session: Session, differing: list[str]) -> None:
            nodes = {n.name: n for n in session.scalars(select(Node).where(Node.name.in_(differing)))}
            hosts = sorted(h for h in differing if h in nodes and selection.takes(nodes[h]))
            if not hosts:
                if change is None:
                    raise InvalidInput(f"nothing to roll out: the documents of {selection.describe()} are what "
                                       "their roles render now")
                return
            started.append(self._create(session, selection, policy, hosts, describe))

        pushed = self.desired.converge(change, stage=stage)
        if started:
            self._notify("started", started[0])
        return (started[0] if started else None), pushed

    def _create(self, session: Session, selection: Selection, policy: Policy, hosts: list[str],
                describe: str) -> int:
        busy = session.execute(select(RolloutNode.node, Rollout.id, Rollout.state).join(
            Rollout, Rollout.id == RolloutNode.rollout).where(
            RolloutNode.node.in_(hosts), RolloutNode.state.in_((WAITING, *ACTIVE)),
            Rollout.state.in_((RUNNING, PAUSED)))).first()
        if busy is not None:
            raise InvalidInput(f"node '{busy.node}' is in rollout {busy.id} ({busy.state}): let it finish, or "
                               f"'nodeagentctl rollout abort {busy.id}' first")
        for row in session.scalars(select(RolloutNode).where(RolloutNode.node.in_(hosts),
                                                             RolloutNode.state == WAITING)):
            row.state, row.reason = SUPERSEDED, "taken over by a later rollout"
        now = time.time()
        rollout = Rollout(state=RUNNING, selection=selection.describe(), change=describe, canary=policy.canary,
                          max_unavailable=policy.max_unavailable, soak=policy.soak, batch=1, created_at=now,
                          updated_at=now)
        session.add(rollout)
        session.flush()
        for number, batch in enumerate(policy.batches(hosts), 1):
            for host in batch:
                session.add(RolloutNode(rollout=rollout.id, node=host, batch=number,
                                        state=ROLLING if number == 1 else WAITING, since=now))
        self.inventory.add_event(None, "rollout.started", f"rollout {rollout.id}: {len(hosts)} nodes of "
                                 f"{rollout.selection} in {len(policy.batches(hosts))} batches"
                                 + (f" ({describe})" if describe else ""), session)
        return rollout.id

    # -- the operator's controls ------------------------------------------------------------------
    def pause(self, number: int) -> None:
        self._set(number, (RUNNING,), PAUSED, "paused by the operator")

    def resume(self, number: int) -> None:
        """Carry on a paused or failed rollout: its failed nodes are judged again (after a fix) from now; the
        serving coordinators take it from there."""
        with self.inventory.session() as session:
            rollout = _get(session, number)
            if rollout.state not in (PAUSED, FAILED):
                raise InvalidInput(f"rollout {number} is {rollout.state}: only a paused or failed one resumes")
            now = time.time()
            for row in session.scalars(select(RolloutNode).where(RolloutNode.rollout == number,
                                                                 RolloutNode.state == FAILED)):
                row.state, row.since, row.reason = ROLLING, now, None
            rollout.state, rollout.reason, rollout.updated_at = RUNNING, None, now
            self.inventory.add_event(None, "rollout.resumed", f"rollout {number}", session)

    def abort(self, number: int) -> None:
        """Stop for good: nothing more is released; the nodes not reached keep what they run (a later rollout
        over them, or undoing the change, lets their new documents go)."""
        self._set(number, UNFINISHED, ABORTED, "aborted by the operator")
        self._notify("aborted", number)

    def _set(self, number: int, allowed: tuple[str, ...], state: str, reason: str) -> None:
        with self.inventory.session() as session:
            rollout = _get(session, number)
            if rollout.state not in allowed:
                raise InvalidInput(f"rollout {number} is {rollout.state}, not {' or '.join(allowed)}")
            rollout.state, rollout.reason, rollout.updated_at = state, reason, time.time()
            self.inventory.add_event(None, f"rollout.{state}", f"rollout {number}: {reason}", session)

    # -- reading ----------------------------------------------------------------------------------
    def list(self) -> list[tuple[Rollout, dict[str, int]]]:
        return listed(self.inventory)

    def show(self, number: int) -> tuple[Rollout, list[RolloutNode]]:
        return shown(self.inventory, number)

    def of_node(self, host: str) -> str:
        """Where ``host`` stands in the newest rollout that took it (``node show``): '' when none did."""
        with self.inventory.session() as session:
            found = session.execute(select(Rollout.id, Rollout.state, RolloutNode.state, RolloutNode.batch).join(
                RolloutNode, RolloutNode.rollout == Rollout.id).where(RolloutNode.node == host)
                .order_by(Rollout.id.desc()).limit(1)).first()
        if found is None:
            return ""
        number, rollout_state, state, batch = found
        return f"rollout {number} ({rollout_state}): {state}, batch {batch}"

    # -- the tick ---------------------------------------------------------------------------------
    def judge(self) -> None:
        """Move each rollout's changing nodes on (rolling → soaking → done); a failure stops the rollout. A
        paused or failed rollout releases nothing more, but the nodes it changed are still judged to the end.
        One coordinator at a time (the caller holds the 'rollouts' lock)."""
        failures = []
        with self.inventory.session() as session:
            judged = list(session.scalars(select(RolloutNode.node).join(Rollout, Rollout.id == RolloutNode.rollout)
                                          .where(Rollout.state.in_(UNFINISHED), RolloutNode.state.in_(ACTIVE))))
        # Asked with no transaction open: Neutron may take seconds to answer, longer than the database server
        # lets a transaction sit idle (database_idle_transaction_timeout).
        agents = self._neutron_agents(sorted(set(judged))) if judged else {}
        with self.inventory.session() as session:
            for rollout in session.scalars(select(Rollout).where(Rollout.state.in_(UNFINISHED))
                                           .order_by(Rollout.id)):
                was = rollout.state
                failure = self._judge(session, rollout, agents)
                if failure and was != FAILED:
                    failures.append((rollout.id, failure))
        for number, (host, reason) in failures:
            self._notify("failed", number, node=host, reason=reason)
        self._gauges()

    def release(self) -> list[tuple[str, int]]:
        """Release the next batch of each running rollout whose batch is done, or complete it. The release is
        made inside the converge that stores the batch's documents: one transaction, so a batch is never marked
        released without its documents (and two coordinators never release the same batch twice)."""
        with self.inventory.session() as session:
            if not self._ready(session):
                return []
        finished: list[int] = []

        def stage(session: Session, _differing: list[str]) -> None:
            finished.clear()
            for rollout in self._ready(session):
                if self._release(session, rollout) == COMPLETED:
                    finished.append(rollout.id)

        pushed = self.desired.converge(stage=stage)
        for number in finished:
            self._notify("completed", number)
        return pushed

    @staticmethod
    def _ready(session: Session) -> list[Rollout]:
        """Running rollouts with no node changing: their next batch may go."""
        busy = select(RolloutNode.rollout).where(RolloutNode.state.in_(ACTIVE))
        return list(session.scalars(select(Rollout).where(Rollout.state == RUNNING, Rollout.id.not_in(busy))
                                    .order_by(Rollout.id)))

    def _judge(self, session: Session, rollout: Rollout, agents: dict[str, list[str]]) -> tuple[str, str] | None:
        """Move each active node on (rolling → soaking → done); the first failure fails the rollout. ``agents``:
        per node, the agents Neutron does not list alive (a node not in it is judged on its reports alone)."""
        rows = list(session.scalars(select(RolloutNode).where(RolloutNode.rollout == rollout.id,
                                                              RolloutNode.state.in_(ACTIVE))))
        if not rows:
            return None
        nodes = {n.name: n for n in session.scalars(select(Node).where(Node.name.in_([r.node for r in rows])))}
        now = time.time()
        for row in sorted(rows, key=lambda r: r.node):
            node = nodes.get(row.node)
            problem, healthy, awaited = _health(node, agents.get(row.node)) if node else \
                ("the node was forgotten", False, "")
            if node is not None:
                row.generation = node.desired_generation
            if problem:
                return self._fail(session, rollout, row, problem, now)
            if row.state == ROLLING and healthy:
                row.state, row.since = SOAKING, now
                self.inventory.add_event(row.node, "rollout.node.healthy", f"rollout {rollout.id}: generation "
                                         f"{row.generation} applied, soaking {rollout.soak:g} s", session)
            elif row.state == ROLLING and now - (row.since or now) > self.node_timeout:
                return self._fail(session, rollout, row, f"{awaited} within {self.node_timeout:.0f} s", now)
            elif row.state == SOAKING and not healthy:
                return self._fail(session, rollout, row, "unhealthy while soaking", now)
            if row.state == SOAKING and now - (row.since or now) >= rollout.soak:
                row.state, row.since = DONE, now
        return None

    def _fail(self, session: Session, rollout: Rollout, row: RolloutNode, problem: str, now: float
              ) -> tuple[str, str]:
        row.state, row.since, row.reason = FAILED, now, problem
        if rollout.state == FAILED:  # already stopped by another node: this one is told, not re-alerted
            return row.node, problem
        rollout.state, rollout.updated_at = FAILED, now
        rollout.reason = f"{row.node}: {problem}"
        self.inventory.add_event(row.node, "rollout.failed", f"rollout {rollout.id} stopped after batch "
                                 f"{rollout.batch}: {problem}", session)
        if self.metrics is not None:
            self.metrics.rollout_failures.inc()
        return row.node, problem

    def _release(self, session: Session, rollout: Rollout) -> str:
        """The next batch of a rollout whose batch is done: 'released' or 'completed'."""
        rows = list(session.scalars(select(RolloutNode).where(RolloutNode.rollout == rollout.id)))
        waiting = [r for r in rows if r.state == WAITING]
        now = time.time()
        if not waiting:
            rollout.state, rollout.updated_at, rollout.reason = COMPLETED, now, None
            self.inventory.add_event(None, "rollout.completed", f"rollout {rollout.id}: "
                                     f"{sum(r.state == DONE for r in rows)} nodes", session)
            return COMPLETED
        batch = min(r.batch for r in waiting)
        for row in waiting:
            if row.batch == batch:
                row.state, row.since = ROLLING, now
        rollout.batch, rollout.updated_at = batch, now
        self.inventory.add_event(None, "rollout.batch", f"rollout {rollout.id}: batch {batch} released ("
                                 + ", ".join(sorted(r.node for r in waiting if r.batch == batch)) + ")", session)
        return "released"

    def _neutron_agents(self, hosts: list[str]) -> dict[str, list[str]]:
        """Per host, the agents its roles start that Neutron does not list alive (only where it can ask)."""
        verifier = self.neutron()
        if verifier is None or not verifier.enabled:
            return {}
        found: dict[str, list[str]] = {host: [] for host in hosts}
        try:
            for host in hosts:
                found[host] = [check.binary for check in verifier.checks(host, applied_only=True) if not check.ok]
        except Exception as exc:  # Neutron unreachable: the nodes are judged on their own reports alone
            LOG.warning("rollout: cannot ask Neutron which agents are alive: %s", exc)
            return {}
        return found

    # -- telling ----------------------------------------------------------------------------------
    def _notify(self, what: str, number: int, **details: Any) -> None:
        payload = {"rollout": number, **details}
        LOG.log(logging.WARNING if what in ("failed", "aborted") else logging.INFO, "rollout %d %s%s", number,
                what, f": {details['node']}: {details['reason']}" if "reason" in details else "")
        if self.notices is None:
            return
        self.notices.notify(f"nodeagent.rollout.{what}", payload)
        if what == "failed":
            self.notices.alert({"type": "nodeagent.rollout.failed", **payload, "at": time.time()})

    def _gauges(self) -> None:
        if self.metrics is None:
            return
        with self.inventory.session() as session:
            counts = dict(session.execute(select(Rollout.state, func.count()).group_by(Rollout.state)).all())
        for state in (RUNNING, PAUSED, FAILED, ABORTED, COMPLETED):
            self.metrics.rollouts.labels(state).set(counts.get(state, 0))


def listed(inventory: Inventory) -> list[tuple[Rollout, dict[str, int]]]:
    """Every rollout, newest first, with how many of its nodes are in each state (``rollout list``, the web
    view)."""
    with inventory.session() as session:
        rollouts = list(session.scalars(select(Rollout).order_by(Rollout.id.desc())))
        counts: dict[int, dict[str, int]] = {r.id: {} for r in rollouts}
        for number, state, count in session.execute(select(RolloutNode.rollout, RolloutNode.state, func.count())
                                                    .group_by(RolloutNode.rollout, RolloutNode.state)):
            counts[number][state] = count
        return [(r, counts[r.id]) for r in rollouts]


def shown(inventory: Inventory, number: int) -> tuple[Rollout, list[RolloutNode]]:
    """A rollout and its nodes, by batch (``rollout show``, the web view); NotFound naming it."""
    with inventory.session() as session:
        rollout = _get(session, number)
        rows = list(session.scalars(select(RolloutNode).where(RolloutNode.rollout == number)
                                    .order_by(RolloutNode.batch, RolloutNode.node)))
        return rollout, rows


def _get(session: Session, number: int) -> Rollout:
    rollout = session.get(Rollout, number)
    if rollout is None:
        raise NotFound(f"no rollout {number} ('nodeagentctl rollout list' shows them)")
    return rollout


def _health(node: Node, neutron_down: list[str] | None) -> tuple[str | None, bool, str]:
    """(a problem that fails the rollout, whether the node is healthy on its new generation, what it waits for)."""
    status = node.status or {}
    generation = node.desired_generation
    rollback = status.get("rolled_back") or {}
    if rollback.get("generation") == generation:
        return (f"rolled back generation {generation}: probe {rollback.get('probe', '?')} failed"
                + (f": {rollback['detail']}" if rollback.get("detail") else "")), False, ""
    if not node.alive and node.last_heartbeat is not None:
        return "down (no heartbeat)", False, ""
    applied = node.observed_generation >= generation and status.get("reconciled_generation", 0) >= generation
    if applied and status.get("failed"):
        return f"generation {generation} failed on {', '.join(status['failed'])}", False, ""
    if applied and neutron_down:  # soaking starts when its agents are alive
        return None, False, f"Neutron did not list {', '.join(neutron_down)} alive"
    return None, applied, f"did not report generation {generation} applied"
