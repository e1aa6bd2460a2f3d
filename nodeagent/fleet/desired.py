"""Desired state: render each node's roles, check the fleet, store the documents, then push them.

One unit, all or nothing: an operator's change (a variable, a role, a secret) and every node's
new document are stored in ONE transaction, after every node rendered and the fleet checks
passed; a render or check failure stores nothing. Only then are the documents pushed: a push
that fails is not a rollback (the inventory is the truth); it is recorded (``push.failed``)
and the agent fetches the document at its next heartbeat. The rendering itself (seconds at
1,000 nodes) is done before that transaction opens, from what the change would make: the
transaction stays short and never sits idle for long.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ContextManager

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from nodeagent.fleet.delivery import Delivery, Outgoing, box_key
from nodeagent.fleet.errors import FleetInconsistent, InvalidInput, InventoryBusy, NotFound, PushFailed
from nodeagent.fleet.fleetchecks import check_fleet, option_errors, option_findings
from nodeagent.fleet import rollouts
from nodeagent.fleet.inventory import Inventory, Node, NodeTrust, StateDocument, lock_wait
from nodeagent.fleet.renders import LastOptionErrors, LastRenders
from nodeagent.document.model import parse_document
from nodeagent.document.registry import DriverRegistry

if TYPE_CHECKING:  # imported where it is made: Jinja2 is no cost for read-only commands
    from nodeagent.fleet.notices import Notices
    from nodeagent.process.metrics import CoordinatorMetrics
    from nodeagent.fleet.roles import Roles

LOG = logging.getLogger(__name__)
STORE_BATCH = 100  # documents stored (sealed, inserted) per flush of a converge's transaction

# An operator's change to the inventory, made inside the unit's transaction (and before it, in a transaction rolled
# back, to render from: it changes the database and nothing else).
Change = Callable[[Session], None]
Stage = Callable[[Session, list[str]], None]  # told which nodes' documents change, before any is stored
RenderInputs = tuple[list[str], dict[str, str], Any]  # what a node renders from: roles, variables, facts


def _inputs(node: Node, site: dict[str, str]) -> RenderInputs:
    """A node's roles, its variables (its own over the site's) and facts: with the secrets, all its roles
    render from (the same inputs render the same document)."""
    return list(node.roles or []), {**site, **(node.variables or {})}, node.facts


@dataclass(frozen=True)
class Reading:
    """What a converge decides from, read in one transaction: the secrets, and each node with roles: its
    render inputs, why it is held, its stored generation. Two equal readings make the same documents."""

    secrets: dict[str, str]
    nodes: dict[str, tuple[RenderInputs, str | None, int]]

    def inputs(self, host: str) -> RenderInputs:
        return self.nodes[host][0]

    def held(self, host: str) -> str | None:
        return self.nodes[host][1]


@dataclass(frozen=True)
class Plan:
    """What a converge stores, worked out from a reading: each node's render (a document, or why it cannot
    render), the nodes held and why, and the nodes whose document changes (rendered, passing the fleet checks),
    each with its new document validated (or why it is invalid)."""

    reading: Reading
    renders: dict[str, dict[str, Any] | InvalidInput]
    holds: dict[str, str]
    differing: dict[str, dict[str, Any] | InvalidInput]

    def render(self, host: str, reading: Reading) -> dict[str, Any] | InvalidInput | None:
        """The node's render, if ``reading`` gives it the inputs it was made from (else None)."""
        if host not in self.renders or reading.secrets != self.reading.secrets or \
                reading.inputs(host) != self.reading.inputs(host):
            return None
        return self.renders[host]


class DesiredState:
    """Each node's desired document: rendered from its roles (or set by hand), checked, stored, pushed."""

    def __init__(self, inventory: Inventory, delivery: Delivery, roles: Roles, notices: Notices | None = None,
                 exclusive: Callable[[], ContextManager[None]] = contextlib.nullcontext,
                 metrics: CoordinatorMetrics | None = None):
        self.notices = notices
        self.metrics = metrics
        self.exclusive = exclusive  # one converge at a time across the coordinators (the 'converge' lock)
        self.roles = roles  # one template environment: Jinja2 compiles each template once, reloads it when changed
        self.inventory = inventory
        self.delivery = delivery
        self._registry: DriverRegistry | None = None
        self._last_renders = LastRenders()  # a converge renders again only the nodes whose inputs moved
        self._option_errors = LastOptionErrors()  # ... and lints only the documents it makes
        self.last_timing: dict[str, float] = {}  # the last converge's phases (seconds), for the command's summary

    @property
    def registry(self) -> DriverRegistry:
        """Made on first use: the drivers take most of a second to import."""
        if self._registry is None:
            self._registry = DriverRegistry.from_entry_points()
        return self._registry

    def render(self, host: str, session: Session | None = None) -> dict[str, Any]:
        """What the node's roles render to now (read within ``session``: with its changes not yet committed;
        rendered once its own session, if any, is closed)."""
        with self.inventory.using(session) as session:
            node = session.get(Node, host)
            if node is None:
                raise NotFound(f"no node '{host}'")
            roles, variables, facts = _inputs(node, self.inventory.variables(None, session))
            secrets = self.inventory.secrets(session)
        return self.roles.render(host, roles, variables, secrets, facts)

    def converge(self, change: Change | None = None, stage: Stage | None = None) -> list[tuple[str, int]]:
        """Make ``change``, render every node with roles, check the fleet, store what changed: one transaction.
        Then push what was stored, as it was stored; returns (host, generation) of each document stored.

        Node by node: an operator's change that a node cannot render, or that makes the fleet disagree where
        it agreed, is refused whole (nothing stored, the error names the node). A node that cannot render
        without such a change (its facts changed: an address moved) is held with the reason, and no longer
        blocks the others: every other node's change goes through, and a change that repairs it releases it.

        A node waiting for its batch in a rollout keeps its document; ``stage`` (a rollout starting) is told
        which nodes' documents change, in the transaction, before the waiting ones are left out.

        The whole of it is worked out first, with no transaction open (``_plan_ahead``): rendering, checking
        and validating take seconds at 1,000 nodes, and inside the transaction they would hold every row the
        change wrote that long, and keep it idle longer than ``database_idle_transaction_timeout`` may be (it
        frees what a hung coordinator holds, within the agents' down time). The transaction makes the change
        again and reads the inventory again: when it reads what the plan was made from, it stores the plan;
        else (a heartbeat brought new facts in between) it plans again there, rendering only what changed.
        """
        started = time.monotonic()
        try:
            with self.exclusive():
                locked = time.monotonic()
                ahead = self._plan_ahead(change)
                planned = time.monotonic()
                with self.inventory.session() as session:
                    newly_held, outgoing, accepted = self._make(session, change, stage, ahead)
        except FleetInconsistent as exc:  # recorded once the transaction is rolled back
            self.inventory.add_event(None, "push.blocked", "; ".join(exc.problems))
            raise
        except OperationalError as exc:
            if not lock_wait(exc):
                raise
            raise InventoryBusy("the change was not stored") from None
        stored = time.monotonic()
        self._announce(newly_held)
        if self.metrics is not None:
            self.metrics.converge_seconds.observe(stored - started)
        try:
            self._push(outgoing, [item for item in outgoing if item.host in accepted])
        finally:
            self.last_timing = {"lock_wait_s": locked - started, "plan_s": planned - locked,
                                "store_s": stored - planned, "push_s": time.monotonic() - stored}
        return [(item.host, item.body["generation"]) for item in outgoing]

    def _plan_ahead(self, change: Change | None) -> Plan:
        """The plan for what ``change`` makes: the change made in a transaction rolled back as soon as the
        inventory is read, then planned with none open."""
        with self.inventory.trial() as session:
            if change is not None:
                change(session)
                session.flush()
            reading = self._read(session, self._nodes(session))
            stored = self._stored(session, reading)
        return self._plan(reading, stored, refuse=change is not None)

    def _make(self, session: Session, change: Change | None, stage: Stage | None, ahead: Plan
              ) -> tuple[dict[str, str], list[Outgoing], set[str]]:
        """The change and every node's new document, in ``session``'s transaction: returns the nodes newly
        held, the documents stored (to push) and the accepted nodes (those pushed to)."""
        if change is not None:
            change(session)
            session.flush()
        nodes = self._nodes(session)
        reading = self._read(session, nodes)
        plan = ahead if reading == ahead.reading else \
            self._plan(reading, self._stored(session, reading), refuse=change is not None, ahead=ahead)
        newly_held = self._hold(session, nodes, plan.holds)
        if stage is not None:
            stage(session, list(plan.differing))
            session.flush()
        waiting = rollouts.gated(session)
        box_keys = {t.name: t.box_key for t in session.scalars(select(NodeTrust))}  # read once, not per node
        outgoing = []
        for host, body in plan.differing.items():
            if host not in waiting:
                outgoing.append(self._store(session, host, body, box_keys.get(host)))
                if len(outgoing) % STORE_BATCH == 0:  # sent as they come: the server never waits long between two
                    session.flush()
        return newly_held, outgoing, {n.name for n in nodes if n.enrolment == "accepted"}

    @staticmethod
    def _nodes(session: Session) -> list[Node]:
        return [n for n in session.scalars(select(Node).order_by(Node.name)) if n.roles]

    def _read(self, session: Session, nodes: list[Node]) -> Reading:
        site = self.inventory.variables(None, session)
        return Reading(self.inventory.secrets(session),
                       {n.name: (_inputs(n, site), n.held, n.desired_generation) for n in nodes})

    @staticmethod
    def _stored(session: Session, reading: Reading) -> dict[str, dict[str, Any] | None]:
        """Each node's stored document (its body, the latest generation's), None for a node that has none: one
        query for the fleet (a query per node was a tenth of a change)."""
        latest = select(StateDocument.node, func.max(StateDocument.generation).label("generation")) \
            .group_by(StateDocument.node).subquery()
        found = session.execute(select(StateDocument.node, StateDocument.body).join(
            latest, (StateDocument.node == latest.c.node) & (StateDocument.generation == latest.c.generation)))
        bodies = {host: body for host, body in found if host in reading.nodes}
        return {host: bodies.get(host) for host in reading.nodes}

    def _plan(self, reading: Reading, stored: dict[str, dict[str, Any] | None], refuse: bool,
              ahead: Plan | None = None) -> Plan:
        """Render each node (reusing ``ahead``'s render of a node whose inputs are unchanged), check the fleet,
        validate the documents that change. ``refuse``: an operator's change, refused whole (RoleError,
        FleetInconsistent) when a node it did not find held cannot render or brings a new fleet problem."""
        renders = {}
        templates = self.roles.version()
        for host in reading.nodes:
            made = ahead.render(host, reading) if ahead is not None else None
            renders[host] = made if made is not None else \
                self._rendered(host, reading.inputs(host), reading.secrets, templates)
        self._last_renders.keep_only(reading.nodes)
        self._option_errors.keep_only(reading.nodes)
        failures = {host: why for host, why in renders.items() if isinstance(why, InvalidInput)}
        if refuse:  # the operator's own change broke these nodes: refused, as they are told
            caused = [why for host, why in failures.items() if not reading.held(host)]
            if caused:
                raise caused[0]
        holds = {host: str(why) for host, why in failures.items()}
        kept = self._checked({host: body for host, body in renders.items() if host not in failures}, stored, holds,
                             {host: reading.held(host) for host in reading.nodes}, refuse=refuse,
                             variables={host: reading.inputs(host)[1] for host in reading.nodes})
        differing = {host: self._validated(host, body) for host, body in kept.items() if _differs(stored[host], body)}
        return Plan(reading, renders, holds, differing)

    def _rendered(self, host: str, inputs: RenderInputs, secrets: dict[str, str], templates: Any
                  ) -> dict[str, Any] | InvalidInput:
        """The node's document (its last render when nothing it renders from moved: ``templates``, the roles'
        version), or why it cannot render (a RoleError: a variable, secret or interface its roles need)."""
        roles, variables, facts = inputs
        try:
            return self._last_renders.render(host, inputs, secrets, templates,
                                             lambda: self.roles.render(host, roles, variables, secrets, facts))
        except InvalidInput as exc:
            return exc

    def _checked(self, rendered: dict[str, Any], stored: dict[str, dict[str, Any] | None], holds: dict[str, str],
                 held_before: dict[str, str | None], refuse: bool, variables: dict[str, dict[str, str]]
                 ) -> dict[str, Any]:
        """The rendered documents the fleet checks allow. A problem the stored documents already had blocks
        nothing; a new one refuses an operator's change, or holds the node whose new document brings it. A
        held node's new document is tried last, on its own: it is released when it brings no new problem."""
        running = {host: body for host, body in stored.items() if body is not None}

        def option_problems(host: str, body: dict[str, Any]) -> list[str]:
            """The document's option errors, linted once per node, release and resources (most of a check: the
            stored document was linted when it was made)."""
            release = self.releases({host: body}, variables=variables)[host]
            return self._option_errors.errors(host, release, body.get("resources"),
                                              lambda: option_errors({host: body}, {host: release}))

        def fleet_problems(documents: dict[str, Any]) -> list[str]:
            """check_fleet with each node's release: the checks across nodes, then each document's option
            errors."""
            return check_fleet(documents) + [error for host, body in sorted(documents.items())
                                             for error in option_problems(host, body)]

        baseline = set(fleet_problems(running))

        def new_problems(documents: dict[str, Any]) -> list[str]:
            return [p for p in fleet_problems({**running, **documents}) if p not in baseline]

        was_held = {host for host in rendered if held_before.get(host)}
        free = {host: body for host, body in rendered.items() if host not in was_held}
        problems = new_problems(free)
        if problems and refuse:
            raise FleetInconsistent(problems)
        if not problems:
            kept, trials = dict(free), [h for h in rendered if h in was_held]
        else:
            kept, trials = {}, list(rendered)
        for host in trials:  # one node at a time onto what runs: kept when it brings no new problem
            if stored[host] is not None and not _differs(stored[host], rendered[host]) and host not in was_held:
                kept[host] = rendered[host]
                continue
            new = new_problems({**kept, host: rendered[host]})
            if new:
                holds[host] = "; ".join(new)
            else:
                kept[host] = rendered[host]
        return kept

    def _hold(self, session: Session, nodes: list[Node], holds: dict[str, str]) -> dict[str, str]:
        """Record which nodes are held and why; release those that render again (events in the transaction).
        Returns the nodes held now that were not (or for another reason) before."""
        newly = {}
        for node in nodes:
            reason = holds.get(node.name)
            if reason == node.held:
                continue
            if reason is not None:
                self.inventory.add_event(node.name, "node.held", reason, session)
                newly[node.name] = reason
            else:
                self.inventory.add_event(node.name, "node.released", "its roles render and pass the fleet checks",
                                         session)
            node.held = reason
        return newly

    def _announce(self, held: dict[str, str]) -> None:
        """A node newly held: logged, a notification and a webhook alert (queued, nothing waits here)."""
        for host, reason in sorted(held.items()):
            LOG.warning("node %s is held, the rest of the fleet goes on: %s", host, reason)
            if self.notices is not None:
                self.notices.notify("nodeagent.node.held", {"node": host, "reason": reason})
                self.notices.alert({"type": "nodeagent.node.held", "node": host, "reason": reason,
                                    "at": time.time()})

    def set_state(self, host: str, raw: dict[str, Any], push: bool = True) -> int:
        """Store a new document for ``host`` at the next generation and push it; returns the generation."""
        if raw.get("node", host) != host:
            raise InvalidInput(f"the document is for node '{raw.get('node')}', not '{host}'")
        self._block_on_option_errors({host: raw})
        valid = self._validated(host, raw)
        with self.exclusive(), self.inventory.session() as session:
            outgoing = self._store(session, host, valid)
        if push:
            self._push([outgoing], [outgoing])
        return outgoing.body["generation"]

    def _validated(self, host: str, raw: dict[str, Any]) -> dict[str, Any] | InvalidInput:
        """The document as it is stored (its generation set when it is), or why it is invalid: validated before
        the transaction that stores it, which then only raises the error."""
        try:
            return parse_document({**raw, "node": host, "generation": 0}, self.registry).to_dict()
        except InvalidInput as exc:
            return exc

    def _store(self, session: Session, host: str, valid: dict[str, Any] | InvalidInput,
               key: str | None = None) -> Outgoing:
        """The document ``_validated`` made at the node's next generation (in the caller's transaction); returned
        as it is to be sent, with the node's encryption key."""
        node = session.get(Node, host)
        if node is None:
            raise NotFound(f"no node '{host}' (it appears when its agent first reports)")
        if node.enrolment == "revoked":
            raise InvalidInput(f"node '{host}' is revoked: it gets nothing ('node forget {host}' first)")
        if isinstance(valid, InvalidInput):
            raise valid
        generation = max(node.desired_generation, node.observed_generation) + 1
        body = {**valid, "generation": generation}
        session.add(StateDocument(node=host, generation=generation, body=body, created_at=time.time()))
        node.desired_generation = generation
        self.inventory.add_event(host, "state.set", f"generation {generation}", session)
        return Outgoing(host, {**body, "node": host, "generation": generation}, key or box_key(session, host))

    def _push(self, stored: list[Outgoing], documents: list[Outgoing]) -> None:
        """Push ``documents``; those it fails for are recorded and named (PushFailed)."""
        failed = self.delivery.push_all(documents)
        if not failed:
            return
        generations = {outgoing.host: outgoing.body["generation"] for outgoing in stored}
        with self.inventory.session() as session:
            for host, why in failed.items():
                self.inventory.add_event(host, "push.failed", f"generation {generations[host]} stored, not pushed "
                                         f"({why}): the agent fetches it at its next heartbeat", session)
        raise PushFailed(list(generations.items()), failed)

    def plan(self, host: str) -> dict[str, Any]:
        """The agent's diff against what its roles render now (or its stored document without roles)."""
        node = self.inventory.node(host)
        stored = self.inventory.document(host)
        if node is not None and node.roles:
            body = self.render(host)
            generation = node.desired_generation + _differs(stored and stored.body, body)  # the next push's
        elif stored is not None:
            body, generation = stored.body, stored.generation
        else:
            raise NotFound(f"node '{host}' has no document")
        return self.delivery.ask_plan(host, {**body, "node": host, "generation": generation})

    def releases(self, documents: dict[str, dict[str, Any]], session: Session | None = None,
                 variables: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
        """Each node's target OpenStack release: its document's, else its openstack_release variable
        (from ``variables`` when the caller has read them)."""
        from nodeagent.fleet.roles import DEFAULTS

        def variable(host: str) -> str | None:
            known = variables.get(host) if variables is not None else None
            return (known if known is not None else self.inventory.variables(host, session)).get("openstack_release")

        return {host: str(doc.get("openstack_release") or variable(host) or DEFAULTS["openstack_release"])
                for host, doc in documents.items()}

    def _block_on_option_errors(self, documents: dict[str, dict[str, Any]]) -> None:
        problems = option_errors(documents, self.releases(documents))
        if problems:
            self.inventory.add_event(next(iter(documents)) if len(documents) == 1 else None, "push.blocked",
                                     "; ".join(problems))
            raise FleetInconsistent(problems)

    def lint(self, host: str | None = None, role: str | None = None, release: str | None = None) -> list[Any]:
        """Option findings of what each node's roles render now (``nodeagentctl lint``)."""
        nodes = [n for n in self.inventory.nodes() if n.roles and (host is None or n.name == host)
                 and (role is None or role in n.roles)]
        if host is not None and not nodes:
            raise NotFound(f"no node '{host}' with roles")
        rendered = {node.name: self.render(node.name) for node in nodes}
        releases = {h: release for h in rendered} if release else self.releases(rendered)
        return option_findings(rendered, releases)

    def render_for_new_facts(self, hosts: list[str]) -> None:
        """A node's interfaces or addresses changed: its roles may render differently (local_ip)."""
        if not hosts:
            return
        try:
            for host, generation in self.converge():
                LOG.info("facts of %s changed: %s pushed at generation %d", ", ".join(hosts), host, generation)
        except PushFailed as exc:  # stored; recorded per node; the agents fetch it at their next heartbeat
            LOG.warning("facts of %s changed: %s", ", ".join(hosts), exc)
        except Exception as exc:  # recorded; the operator sees it in events and fixes the inventory
            LOG.error("facts of %s changed, but the fleet cannot be rendered: %s", ", ".join(hosts), exc)
            self.inventory.add_event(hosts[0], "push.blocked", str(exc))


def _differs(stored: dict[str, Any] | None, body: dict[str, Any]) -> bool:
    """Whether ``body`` would be a new generation: its mode, resources, probes or rollback timeout differ from
    the stored document's (``stored``, None when there is none)."""
    return stored is None or any(stored.get(key, default) != body.get(key, default) for key, default in
                                 (("mode", "enforce"), ("resources", None), ("probes", None),
                                  ("rollback_timeout", None)))

