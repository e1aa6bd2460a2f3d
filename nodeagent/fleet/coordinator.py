"""The coordinator: builds the fleet's parts with their dependencies, and runs the serve loop over them.

Callers use the parts directly; there is no facade method that forwards to one:

* ``reports``  — intake of what agents send (reports, events, drift, fetches), enrolment of new keys;
* ``desired``  — each node's document: render → check → store (one transaction) → push;
* ``delivery`` — documents sealed for one node and pushed, plans asked for;
* ``settings`` — what the operator sets (roles, variables, secrets), each change converging the fleet;
* ``liveness`` — nodes down and up;
* ``rollouts`` — changes pushed in batches, each judged healthy before the next;
* ``notices``  — notifications on the bus and webhook alerts;
* ``channel``  — the coordinator's end of the protocol (``wire.protocol``): its signing key;
* ``inventory``, ``vault``, ``roles``, ``neutron`` — the database, the at-rest key, the templates, Neutron.

``nodeagentctl serve`` runs the RPC server and the down check; the other ``nodeagentctl``
commands use the same parts on the same database and key, on the coordinator's host (as
salt-key works on the master's files). Making a Coordinator touches nothing: ``set_up()``
(``keygen``, ``serve``) makes the state directory, the keys and the schema; every other
use opens what is there, or says what to run. Parts are made on first use, so read-only
commands (node list, events) need neither the broker nor the drivers.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from oslo_config import cfg

from nodeagent.fleet import enrolment
from nodeagent.fleet.coordination import Coordination, backend_url
from nodeagent.fleet.delivery import Delivery
from nodeagent.fleet.desired import DesiredState
from nodeagent.fleet.errors import FleetInconsistent, NotFound, NotSetUp, PushFailed
from nodeagent.fleet.inventory import Inventory, SessionLimits
from nodeagent.fleet.liveness import Liveness
from nodeagent.fleet.notices import Notices
from nodeagent.fleet.reports import Reports, refuse
from nodeagent.fleet.rollouts import Rollouts
from nodeagent.fleet.settings import Settings
from nodeagent.process.daemon import sd_notify
from nodeagent.process.metrics import CoordinatorMetrics
from nodeagent.wire import box
from nodeagent.wire.protocol import CoordinatorChannel
from nodeagent.wire.refusals import RefusalLog

if TYPE_CHECKING:
    from nodeagent.fleet.neutroncheck import Verifier
    from nodeagent.fleet.roles import Roles

__all__ = ["Coordinator", "FleetInconsistent", "NotFound", "NotSetUp", "PushFailed"]

LOG = logging.getLogger(__name__)
cached = functools.cached_property
GAUGE_TICKS = 10  # seconds between two updates of the fleet's gauges (a scan of every node)
PUSH_RETRIES = 2  # a push does not wait for the broker: a node that misses one fetches at its next heartbeat


class Coordinator:
    """The fleet's parts over one inventory database and one signing key."""

    def __init__(self, conf: cfg.ConfigOpts):
        self.conf = conf
        group = conf.coordinator
        self.state_dir = Path(group.state_dir)
        self.channel = CoordinatorChannel(Path(group.signing_key or self.state_dir / "coordinator.key"), _no_key)
        self.metrics = CoordinatorMetrics()
        self._transport: Any = None
        self._heartbeat_transport: Any = None

    def set_up(self) -> None:
        """Make what is missing of the coordinator's state: its directory, keys and schema (keygen, serve)."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.channel.create_key()
        self.upgrade_schema()

    def upgrade_schema(self) -> tuple[str | None, str]:
        """Bring the inventory's schema to this code's revision (``db upgrade``); returns (from, to). Under
        the ``schema`` lock: coordinators started together migrate once."""
        with self.coordination.held("schema", wait=300):
            return Inventory(self._database_url(), self.vault).create_schema()

    def schema_revision(self) -> tuple[str | None, str]:
        """The inventory's revision and the one this code expects (``db version``)."""
        from nodeagent.fleet import schema

        return schema.current(Inventory(self._database_url()).engine), schema.head()

    # -- the parts, made on first use -----------------------------------------------------------
    @cached
    def vault(self) -> box.Vault:
        return box.Vault(self.conf.coordinator.secrets_key or self.state_dir / "secrets.key")

    @cached
    def inventory(self) -> Inventory:
        url = self._database_url()
        unsealed = Inventory(url)  # asking whether it is set up makes nothing, not even the at-rest key
        if not unsealed.has_schema():
            raise NotSetUp(f"no coordinator inventory at {unsealed.where}: run 'nodeagentctl keygen' first "
                           f"(it sets up {self.state_dir}), or check --config-file")
        options = self.conf.coordinator
        return Inventory(url, self.vault, SessionLimits(options.database_lock_timeout,
                                                        options.database_idle_transaction_timeout))

    def _database_url(self) -> str:
        return self.conf.coordinator.database_connection or f"sqlite:///{self.state_dir / 'coordinator.db'}"

    @cached
    def coordination(self) -> Coordination:
        """The locks this coordinator shares with the others on the same database (tooz)."""
        url = self.conf.coordinator.coordination_url or backend_url(self._database_url(), self.state_dir)
        return Coordination(url, self.conf.host)

    @cached
    def refusals(self) -> RefusalLog:
        """Refusals (forged, replayed, unknown): one event per source per window, with a count."""
        return RefusalLog(self.inventory.add_event, self.conf.coordinator.refusal_window)

    @cached
    def notices(self) -> Notices:
        return Notices(self.conf, self.inventory, self.metrics)

    @cached
    def delivery(self) -> Delivery:
        return Delivery(self.inventory, self.channel, self._agents, functools.partial(refuse, self.refusals))

    @cached
    def desired(self) -> DesiredState:
        return DesiredState(self.inventory, self.delivery, self.roles, self.notices,
                            lambda: self.coordination.held("converge"), self.metrics)

    @cached
    def reports(self) -> Reports:
        group = self.conf.coordinator
        return Reports(self.inventory, self.refusals, self.metrics, self.notices, self.delivery.sealed_document,
                       group.auto_accept, enrolment.Gate(group.max_pending_nodes, group.enrolments_per_minute),
                       heartbeat_max_age=self._down_time(), push_grace=self.conf.report_interval,
                       health_refresh=group.health_refresh)

    @cached
    def settings(self) -> Settings:
        return Settings(self.inventory, self.desired)

    @cached
    def liveness(self) -> Liveness:
        return Liveness(self.inventory, self.notices, self.metrics, self._down_time())

    def _down_time(self) -> float:
        return self.conf.coordinator.agent_down_time or 3 * self.conf.report_interval

    @cached
    def rollouts(self) -> Rollouts:
        return Rollouts(self.inventory, self.desired, self.notices, self.metrics,
                        lambda: self.neutron, self.conf.coordinator.rollout_node_timeout)

    @cached
    def neutron(self) -> Verifier:
        """The real Neutron's view of the agents the roles run (``verify``; off without [neutron] cloud)."""
        from nodeagent.fleet.neutroncheck import Verifier

        return Verifier(self.conf, self.inventory, self.notices)

    @cached
    def roles(self) -> Roles:
        """The role templates (roles_dir): ``role list`` and ``role show`` need no inventory."""
        from nodeagent.fleet.roles import Roles

        return Roles(self.conf.coordinator.roles_dir)

    # -- the bus ----------------------------------------------------------------------------------
    def transport(self) -> Any:
        """The RPC transport, made on first use, so that read-only commands need no broker."""
        from nodeagent.wire import rpc as messaging

        if self._transport is None:
            messaging.coordinator_defaults(self.conf)
            self._transport = messaging.rpc_transport(self.conf)
        return self._transport

    def heartbeat_transport(self) -> Any:
        """Where the heartbeats agents cast arrive (the RPC broker), made when serving starts."""
        from nodeagent.wire import rpc as messaging

        if self._heartbeat_transport is None:
            messaging.coordinator_defaults(self.conf)
            self._heartbeat_transport = messaging.heartbeat_transport(self.conf)
        return self._heartbeat_transport

    def _agents(self) -> Any:
        from nodeagent.wire import rpc as messaging

        return messaging.AgentAPI(self.transport(), timeout=self.conf.rpc_response_timeout, retry=PUSH_RETRIES)

    def close(self) -> None:
        """Let go of the broker connections and the coordination backend, if they were used."""
        if "coordination" in self.__dict__:
            self.coordination.stop()
        for transport in (self._transport, self._heartbeat_transport):
            if transport is not None:
                transport.cleanup()
        self._transport = self._heartbeat_transport = None

    # -- the daemon -----------------------------------------------------------------------------
    def serve(self, stopped: Callable[[float], bool]) -> None:
        """Answer agents and notice nodes down until ``stopped(seconds)`` (which may wait that long) says so.

        The process is the caller's: ``nodeagentctl serve`` turns SIGTERM and SIGINT into ``stopped``.
        """
        from nodeagent.process import metrics
        from nodeagent.wire import rpc as messaging

        self.set_up()
        _ = self.reports, self.desired, self.liveness  # made before the RPC threads can race to make them
        web = self._serve_web()  # first: a wrong [web] option stops the start before anything else runs
        server = messaging.coordinator_server(self.transport(), self.conf.host, self.reports, self.channel)
        server.start()
        heartbeats = messaging.heartbeat_listener(self.heartbeat_transport(), self.reports, self._agents(),
                                                  self.conf.oslo_messaging_rabbit.rabbit_qos_prefetch_count
                                                  or messaging.COORDINATOR_PREFETCH)
        heartbeats.start()  # even when agents are not asked to cast: some may still (a change of the option)
        self.reports.cast_heartbeats = self.conf.coordinator.heartbeat_casts
        LOG.info("coordinator serving on %s (database %s)", messaging.topic(self.conf, messaging.COORDINATOR_TOPIC),
                 self.inventory.where)
        self.notices.start_webhooks()
        metrics.serve(self.metrics.registry, self.conf.coordinator.metrics_address)
        sd_notify("READY=1")
        ticks = 0
        try:
            while not stopped(1.0):
                ticks += 1
                self.refusals.flush()
                self.liveness.check_down()
                if self.neutron.enabled and self.coordination.claim("neutron"):
                    self.neutron.tick(time.monotonic())
                self.desired.render_for_new_facts(self.reports.take_facts_changed())
                self._advance_rollouts()
                if ticks % GAUGE_TICKS == 0:
                    self.liveness.update_gauges()
                sd_notify("WATCHDOG=1")
        finally:  # bounded: with the broker away, oslo.messaging's listener sees its stop flag only once back
            messaging.within(messaging.STOP_WAIT, server.stop, heartbeats.stop, server.wait, heartbeats.wait,
                             unless_answering=self.conf)
            self.notices.stop_webhooks()
            if web is not None:
                web.stop()
            messaging.within(messaging.STOP_WAIT, self.close, unless_answering=self.conf)

    def _serve_web(self) -> Any:
        """The read-only web view ([web] address), or None when it is off (the default)."""
        if not self.conf.web.address:
            return None
        from nodeagent.fleet.web import server

        return server.start(self.conf, self.inventory, self.neutron)

    def _advance_rollouts(self) -> None:
        """One coordinator at a time judges (the others find the lock taken and go on); releasing a batch is
        a converge (under its own lock, so not inside this one: tooz takes one lock at a time per process)."""
        try:
            with self.coordination.tried("rollouts") as ours:
                if ours:
                    self.rollouts.judge()
            self.rollouts.release()
        except PushFailed as exc:  # stored; the agents fetch it at their next heartbeat
            LOG.warning("rollout: %s", exc)
        except Exception:  # the next tick tries again; the serve loop goes on
            LOG.exception("rollout: could not advance")


def _no_key(path: Path) -> NotSetUp:
    return NotSetUp(f"no signing key at {path}: run 'nodeagentctl keygen' (it makes it)")
