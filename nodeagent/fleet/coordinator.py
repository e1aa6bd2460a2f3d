"""The coordinator: the fleet's control plane, composed of its parts, and the serve loop that runs them.

* ``reports``  — intake of what agents send (reports, events, drift, fetches), enrolment of new keys;
* ``desired``  — each node's document: render → check → store (one transaction) → push;
* ``delivery`` — a document sealed for one node (signed, encrypted to its key), pushed, planned;
* ``settings`` — what the operator sets (roles, variables, secrets), each change converging the fleet;
* ``liveness`` — nodes down and up;
* ``notices``  — notifications on the bus and webhook alerts;
* ``signer``   — the signing key every document and answer is sealed with.

``nodeagentctl serve`` runs the RPC server and the down check; the other ``nodeagentctl``
commands use the same class on the same database and key, on the coordinator's host (as
salt-key works on the master's files). Making a Coordinator touches nothing: ``set_up()``
(``keygen``, ``serve``) makes the state directory, the keys and the schema; every other
use opens what is there, or says what to run.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any, Callable

from oslo_config import cfg

from nodeagent.fleet import enrolment
from nodeagent.fleet.delivery import Delivery
from nodeagent.fleet.desired import DesiredState
from nodeagent.fleet.errors import FleetInconsistent, NotFound, NotSetUp, PushFailed
from nodeagent.fleet.inventory import DriftRecord, Event, Inventory, Node
from nodeagent.fleet.liveness import Liveness
from nodeagent.fleet.notices import Notices
from nodeagent.fleet.reports import Reports
from nodeagent.fleet.settings import Settings
from nodeagent.fleet.signer import Signer
from nodeagent.kit.daemon import sd_notify
from nodeagent.kit.metrics import CoordinatorMetrics
from nodeagent.wire import box, trust
from nodeagent.wire.refusals import RefusalLog

# oslo.messaging and the drivers take most of a second to import: read-only
# commands (node list, events) do without them, so they are imported on first use.

__all__ = ["Coordinator", "FleetInconsistent", "NotFound", "NotSetUp", "PushFailed"]

LOG = logging.getLogger(__name__)
# A push does not wait for the broker: a node that misses one fetches its document at its next heartbeat.
PUSH_RETRIES = 2
cached = functools.cached_property


class Coordinator:
    """The fleet's control plane over one inventory database and one signing key."""

    def __init__(self, conf: cfg.ConfigOpts):
        self.conf = conf
        group = conf.coordinator
        self.state_dir = Path(group.state_dir)
        self.signer = Signer(Path(group.signing_key or self.state_dir / "coordinator.key"))
        self.metrics = CoordinatorMetrics()
        self._transport = None

    def set_up(self) -> None:
        """Make what is missing of the coordinator's state: its directory, keys and schema (keygen, serve)."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.signer.create()
        self._open_inventory().create_schema()
        _ = self.vault  # opening it makes the at-rest key when there is none

    # -- the parts, made on first use -----------------------------------------------------------
    @cached
    def vault(self) -> box.Vault:
        return box.Vault(self.conf.coordinator.secrets_key or self.state_dir / "secrets.key")

    @cached
    def inventory(self) -> Inventory:
        inventory = self._open_inventory()
        if not inventory.has_schema():
            raise NotSetUp(f"no coordinator inventory at {inventory.where}: run 'nodeagentctl keygen' first "
                           f"(it sets up {self.state_dir}), or check --config-file")
        inventory.engine.dialect.nodeagent_vault = self.vault
        return inventory

    def _open_inventory(self) -> Inventory:
        group = self.conf.coordinator
        return Inventory(group.database_connection or f"sqlite:///{self.state_dir / 'coordinator.db'}")

    @cached
    def refusals(self) -> RefusalLog:
        """Refusals (forged, replayed, unknown): one event per source per window, with a count."""
        return RefusalLog(self.inventory.add_event, self.conf.coordinator.refusal_window)

    @cached
    def notices(self) -> Notices:
        return Notices(self.conf, self.inventory, self.metrics)

    @cached
    def delivery(self) -> Delivery:
        return Delivery(self.inventory, self.signer, lambda: self.agents, self.refuse)

    @cached
    def desired(self) -> DesiredState:
        return DesiredState(self.inventory, self.delivery, self.roles)

    @cached
    def reports(self) -> Reports:
        return Reports(self.inventory, self.refusals, self.metrics, self.notices, self.delivery.sealed_document,
                       self.conf.coordinator.auto_accept)

    @cached
    def settings(self) -> Settings:
        return Settings(self.inventory, self.desired)

    @cached
    def liveness(self) -> Liveness:
        return Liveness(self.inventory, self.notices, self.metrics,
                        self.conf.coordinator.agent_down_time or 3 * self.conf.report_interval)

    @cached
    def neutron(self) -> Any:
        """The real Neutron's view of the agents the roles run (``verify``; off without [neutron] cloud)."""
        from nodeagent.fleet.neutroncheck import Verifier

        return Verifier(self)

    # -- the key and the bus ------------------------------------------------------------------
    @property
    def key(self) -> Any:
        return self.signer.key

    @key.setter
    def key(self, key: Any) -> None:  # a rotation makes a new one
        self.signer.key = key

    @property
    def key_path(self) -> Path:
        return self.signer.key_path

    def public_key_text(self) -> str:
        """The public key agents trust (coordinator_public_key)."""
        return trust.public_text(self.key.public_key())

    def rotate_keys(self) -> int:
        """New signing and at-rest keys; returns how many stored values were re-encrypted."""
        from nodeagent.fleet import rotation

        return rotation.rotate(self)

    def retire_previous_key(self) -> bool:
        from nodeagent.fleet import rotation

        return rotation.retire_previous(self)

    @property
    def transport(self):
        """Made on first use, so that read-only commands need no broker."""
        from nodeagent.wire import rpc as messaging

        if self._transport is None:
            messaging.register_opts(self.conf)
            self._transport = messaging.rpc_transport(self.conf)
        return self._transport

    @property
    def agents(self):
        from nodeagent.wire import rpc as messaging

        return messaging.AgentAPI(self.transport, timeout=self.conf.rpc_response_timeout, retry=PUSH_RETRIES)

    def close(self) -> None:
        """Let go of the broker connections, if any were made."""
        if self._transport is not None:
            self._transport.cleanup()
            self._transport = None

    # -- what agents call (through wire.rpc.CoordinatorEndpoint) ----------------------------------
    def report_state(self, sealed: Any) -> Any:
        """A ``wire.messages.ReportAnswer``."""
        return self.reports.report_state(sealed)

    def fetch_state(self, sealed: dict[str, Any]) -> dict[str, Any] | None:
        return self.reports.fetch_state(sealed)

    def signed_reply(self, request: Any, answer: Any) -> dict[str, Any]:
        return self.signer.signed_reply(request, answer)

    def seal(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.signer.seal(payload)

    def refuse(self, host: Any, kind: str, reason: str) -> None:
        self.reports.refuse(host, kind, reason)

    # -- documents ----------------------------------------------------------------------------
    def set_state(self, host: str, raw: dict[str, Any], push: bool = True) -> int:
        return self.desired.set_state(host, raw, push)

    def sealed_document(self, host: str) -> dict[str, Any] | None:
        return self.delivery.sealed_document(host)

    def push(self, host: str) -> None:
        self.delivery.push(host)

    def plan(self, host: str) -> dict[str, Any]:
        return self.desired.plan(host)

    def node_answer(self, host: str, request: Any, sealed: Any) -> Any:
        return self.delivery.node_answer(host, request, sealed)

    def render(self, host: str) -> dict[str, Any]:
        return self.desired.render(host)

    def converge_roles(self) -> list[tuple[str, int]]:
        return self.desired.converge()

    def lint(self, host: str | None = None, role: str | None = None, release: str | None = None) -> list[Any]:
        return self.desired.lint(host, role, release)

    @cached
    def roles(self) -> Any:
        """The role templates (roles_dir): ``role list`` and ``role show`` need no inventory."""
        from nodeagent.fleet.roles import Roles

        return Roles(self.conf.coordinator.roles_dir)

    # -- the fleet as the operator sees it ----------------------------------------------------
    def nodes(self) -> list[Node]:
        return self.inventory.nodes()

    def node(self, host: str) -> Node:
        node = self.inventory.node(host)
        if node is None:
            raise NotFound(f"no node '{host}'")
        return node

    def open_drift_counts(self) -> dict[str, int]:
        return self.inventory.open_drift_counts()

    def events(self, node: str | None = None, kind: str | None = None, limit: int = 200) -> list[Event]:
        return self.inventory.events(node, kind, limit)

    def drift(self, node: str | None = None, since: float | None = None, only_open: bool = False,
              limit: int = 500) -> list[DriftRecord]:
        return self.inventory.drift(node, since, only_open, limit)

    # -- enrolment and settings ---------------------------------------------------------------
    def accept(self, host: str) -> None:
        enrolment.accept(self.inventory, host)

    def revoke(self, host: str) -> None:
        enrolment.revoke(self.inventory, host)

    def forget(self, host: str) -> None:
        enrolment.forget(self.inventory, host)

    def assign(self, host: str, roles: list[str], remove: bool = False) -> list[tuple[str, int]]:
        return self.settings.assign(host, roles, remove)

    def set_variable(self, key: str, value: str, host: str | None = None) -> list[tuple[str, int]]:
        return self.settings.set_variable(key, value, host)

    def variables(self, host: str | None = None) -> dict[str, str]:
        return self.inventory.variables(host)

    def variable_origins(self, host: str | None = None) -> list[tuple[str, str, str]]:
        return self.settings.variable_origins(host)

    def set_secret(self, key: str, value: str) -> list[tuple[str, int]]:
        return self.settings.set_secret(key, value)

    def secrets(self) -> dict[str, str]:
        return self.inventory.secrets()

    def secrets_set(self) -> list[tuple[str, float]]:
        return self.inventory.secrets_set()

    # -- liveness and what the coordinator tells ----------------------------------------------
    @property
    def down_time(self) -> float:
        return self.liveness.down_time

    @down_time.setter
    def down_time(self, seconds: float) -> None:
        self.liveness.down_time = seconds

    def check_down(self) -> list[str]:
        return self.liveness.check_down()

    def notify(self, event_type: str, payload: dict[str, Any]) -> None:
        self.notices.notify(event_type, payload)

    def alert(self, alert: dict[str, Any]) -> None:
        self.notices.alert(alert)

    # -- the daemon -----------------------------------------------------------------------------
    def serve(self, stopped: Callable[[float], bool]) -> None:
        """Answer agents and notice nodes down until ``stopped(seconds)`` (which may wait that long) says so.

        The process is the caller's: ``nodeagentctl serve`` turns SIGTERM and SIGINT into ``stopped``.
        """
        from nodeagent.wire import rpc as messaging

        self.set_up()
        _ = self.reports, self.desired, self.liveness  # made before the RPC threads can race to make them
        server = self._start_rpc_server()
        from nodeagent.kit import metrics

        self.notices.start_webhooks()
        metrics.serve(self.metrics.registry, self.conf.coordinator.metrics_address)
        sd_notify("READY=1")
        try:
            while not stopped(1.0):
                self.refusals.flush()
                self.check_down()
                self.neutron.tick(time.monotonic())
                self.desired.render_for_new_facts(self.reports.take_facts_changed())
                self.liveness.update_gauges()
                sd_notify("WATCHDOG=1")
        finally:  # bounded: with the broker away, oslo.messaging's listener sees its stop flag only once back
            messaging.within(messaging.STOP_WAIT, server.stop, server.wait)
            self.notices.stop_webhooks()
            messaging.within(messaging.STOP_WAIT, self.close)

    def _start_rpc_server(self) -> Any:
        from nodeagent.wire import rpc as messaging

        server = messaging.coordinator_server(self.transport, self.conf.host, self)
        server.start()
        LOG.info("coordinator serving on %s (database %s)", messaging.topic(self.conf, messaging.COORDINATOR_TOPIC),
                 self.inventory.where)
        return server
