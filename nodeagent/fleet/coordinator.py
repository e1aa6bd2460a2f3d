"""The coordinator: the fleet's control plane, composed of its parts, and the serve loop that runs them.

* ``reports``  — intake of what agents send (reports, events, drift, fetches), enrolment of new keys;
* ``desired``  — each node's document: render → check → store (one transaction) → push;
* ``delivery`` — a document sealed for one node (signed, encrypted to its key), pushed, planned;
* ``settings`` — what the operator sets (roles, variables, secrets), each change converging the fleet;
* ``liveness`` — nodes down and up;
* ``notices``  — notifications on the bus and webhook alerts;
* ``signer``   — the signing key every document and answer is sealed with.

``nodeagentctl serve`` runs the RPC server and the down check; the other
``nodeagentctl`` commands use the same class on the same database and key, on the
coordinator's host (as salt-key works on the master's files).
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Any

from oslo_config import cfg

from nodeagent.fleet import enrolment
from nodeagent.fleet.delivery import Delivery
from nodeagent.fleet.desired import DesiredState
from nodeagent.fleet.errors import FleetInconsistent, NotFound, PushFailed
from nodeagent.fleet.inventory import Inventory
from nodeagent.fleet.liveness import Liveness
from nodeagent.fleet.notices import Notices
from nodeagent.fleet.reports import Reports
from nodeagent.fleet.settings import Settings
from nodeagent.fleet.signer import Signer
from nodeagent.kit.daemon import sd_notify
from nodeagent.kit.metrics import CoordinatorMetrics
from nodeagent.wire import box
from nodeagent.wire.refusals import RefusalLog

# oslo.messaging and the drivers take most of a second to import: read-only
# commands (node list, events) do without them, so they are imported on first use.

__all__ = ["Coordinator", "FleetInconsistent", "NotFound", "PushFailed"]

LOG = logging.getLogger(__name__)
# A push does not wait for the broker: a node that misses one fetches its document at its next heartbeat.
PUSH_RETRIES = 2


class Coordinator:
    """The fleet's control plane over one inventory database and one signing key."""

    def __init__(self, conf: cfg.ConfigOpts):
        self.conf = conf
        group = conf.coordinator
        state_dir = Path(group.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.vault = box.Vault(group.secrets_key or state_dir / "secrets.key")
        self.inventory = Inventory(group.database_connection or f"sqlite:///{state_dir / 'coordinator.db'}",
                                   self.vault)
        self.signer = Signer(Path(group.signing_key or state_dir / "coordinator.key"))
        # Refusals (forged, replayed, unknown): one event per source per window, with a count.
        self.refusals = RefusalLog(self.inventory.add_event, group.refusal_window)
        self._transport = None
        self.metrics = CoordinatorMetrics()
        self.notices = Notices(conf, self.inventory, self.metrics)
        self.delivery = Delivery(self.inventory, self.signer, lambda: self.agents, self.refuse)
        self.desired = DesiredState(conf, self.inventory, self.delivery)
        self.reports = Reports(self.inventory, self.refusals, self.metrics, self.notices,
                               self.delivery.sealed_document, group.auto_accept)
        self.settings = Settings(self.inventory, self.desired)
        self.liveness = Liveness(self.inventory, self.notices, self.metrics,
                                 group.agent_down_time or 3 * conf.report_interval)

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

    @property
    def transport(self):
        """Made on first use, so that read-only commands need no broker."""
        from nodeagent.wire import rpc as messaging

        if self._transport is None:
            messaging.register_opts(self.conf)
            self._transport = messaging.rpc_transport(self.conf)
        return self._transport

    def close(self) -> None:
        """Let go of the broker connections, if any were made."""
        if self._transport is not None:
            self._transport.cleanup()
            self._transport = None

    @property
    def agents(self):
        from nodeagent.wire import rpc as messaging

        return messaging.AgentAPI(self.transport, timeout=self.conf.rpc_response_timeout, retry=PUSH_RETRIES)

    @property
    def down_time(self) -> float:
        return self.liveness.down_time

    @down_time.setter
    def down_time(self, seconds: float) -> None:
        self.liveness.down_time = seconds

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

    @property
    def roles(self):
        return self.desired.roles

    @property
    def registry(self):
        return self.desired.registry

    # -- enrolment and settings ---------------------------------------------------------------
    def accept(self, host: str) -> None:
        enrolment.accept(self.inventory, host)

    def assign(self, host: str, roles: list[str], remove: bool = False) -> list[tuple[str, int]]:
        return self.settings.assign(host, roles, remove)

    def set_variable(self, key: str, value: str, host: str | None = None) -> list[tuple[str, int]]:
        return self.settings.set_variable(key, value, host)

    def variables(self, host: str | None = None) -> dict[str, str]:
        return self.inventory.variables(host)

    def set_secret(self, key: str, value: str) -> list[tuple[str, int]]:
        return self.settings.set_secret(key, value)

    def secrets(self) -> dict[str, str]:
        return self.inventory.secrets()

    # -- liveness and what the coordinator tells ----------------------------------------------
    def check_down(self) -> list[str]:
        return self.liveness.check_down()

    def update_gauges(self) -> None:
        self.liveness.update_gauges()

    def notify(self, event_type: str, payload: dict[str, Any]) -> None:
        self.notices.notify(event_type, payload)

    def alert(self, alert: dict[str, Any]) -> None:
        self.notices.alert(alert)

    @property
    def alerts(self) -> Any:
        return self.notices.alerts

    # -- the daemon -----------------------------------------------------------------------------
    def serve(self) -> None:
        """Run until SIGTERM or SIGINT: answer agents, notice nodes down."""
        from nodeagent.kit.daemon import Signals
        from nodeagent.wire import rpc as messaging

        signals = Signals(signal.SIGTERM, signal.SIGINT)  # no Event set inside a handler: see Signals
        server = self._start_rpc_server()
        from nodeagent.fleet.neutroncheck import Verifier
        from nodeagent.kit import metrics

        self.notices.start_webhooks()
        metrics.serve(self.metrics.registry, self.conf.coordinator.metrics_address)
        sd_notify("READY=1")
        neutron = Verifier(self)
        try:
            while signals.wait(1.0) is None:
                self.refusals.flush()
                self.check_down()
                neutron.tick(time.monotonic())
                self.desired.render_for_new_facts(self.reports.take_facts_changed())
                self.update_gauges()
                sd_notify("WATCHDOG=1")
        finally:  # bounded: with the broker away, oslo.messaging's listener sees its stop flag only once back
            messaging.within(messaging.STOP_WAIT, server.stop, server.wait)
            self.notices.stop_webhooks()
            messaging.within(messaging.STOP_WAIT, self.close)
            signals.close()

    def _start_rpc_server(self) -> Any:
        from nodeagent.wire import rpc as messaging

        server = messaging.coordinator_server(self.transport, self.conf.host, self)
        server.start()
        LOG.info("coordinator serving on %s (database %s)", messaging.topic(self.conf, messaging.COORDINATOR_TOPIC),
                 self.inventory.engine.url.render_as_string(hide_password=True))
        return server
