"""An agent's connections to the broker: the RPC transport (its client to the coordinator and its server),
the notification transport and the outbox notifications leave from.

Transports may be handed in and shared by many agents of one process (the fleet simulator, tests); those
made here are made on first use and closed by ``close()``. Nothing here is on the reconcile path: a
notification is queued, never waited for, and a broker outage costs notifications, never enforcement.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from oslo_config import cfg

from nodeagent.process.daemon import HostLogger
from nodeagent.wire import rpc as messaging
from nodeagent.wire.outbox import Outbox

LOG = logging.getLogger(__name__)


class BrokerLink:
    """One agent's RPC client, RPC server and notifier."""

    def __init__(self, conf: cfg.ConfigOpts, host: str, transport: Any = None, notification_transport: Any = None):
        self.conf = conf
        self.host = host
        self.log = HostLogger(LOG, host)
        self.server: Any = None
        self.notifications: Outbox | None = None
        self._transport = transport
        self._notification_transport = notification_transport
        self._own_transports: list[Any] = []  # made here on first use: closed by close()
        self._notifier = None
        self._heartbeat: Any = None  # made on the first heartbeat cast
        self._lock = threading.Lock()  # the server's handover against close()
        self._making = threading.Lock()  # a transport made once
        self._closed = False

    def transport(self) -> Any:
        if self._transport is None:
            self._transport = messaging.rpc_transport(self.conf)
            self._own_transports.append(self._transport)
        return self._transport

    def coordinator(self) -> messaging.CoordinatorAPI:
        # A heartbeat not answered within half its interval is given up: one a hung coordinator holds then costs
        # its node 2.5 intervals of silence, inside the down time (3). Asking again at once instead doubled the
        # requests of a fleet whose coordinators were slow, not hung (scale.py --survive at 1,000 agents).
        timeout = max(1, min(self.conf.rpc_response_timeout, self.conf.report_interval / 2))
        return messaging.CoordinatorAPI(self.transport(), timeout=timeout)

    def send_heartbeat(self, sealed: dict[str, Any]) -> None:
        """Cast a sealed heartbeat to the coordinators' shared queue (taken in batches, not answered)."""
        if self._heartbeat is None:
            self._heartbeat = messaging.heartbeat_sender(self._heartbeat_transport(), self.host)
        self._heartbeat(sealed)

    def _heartbeat_transport(self) -> Any:
        """The notification transport when notifications go to the RPC broker (the default: one connection
        for both; a handed one is on it), else one of its own on ``transport_url``."""
        notifications_url = self.conf.oslo_messaging_notifications.transport_url \
            if "oslo_messaging_notifications" in self.conf else None
        if self._notification_transport is not None or notifications_url in (None, self.conf.transport_url):
            return self._notifications_transport()
        transport = messaging.heartbeat_transport(self.conf)
        self._own_transports.append(transport)
        return transport

    def _notifications_transport(self) -> Any:
        with self._making:  # the outbox's thread and the talker's may both come first
            if self._notification_transport is None:
                self._notification_transport = messaging.notification_transport(self.conf)
                self._own_transports.append(self._notification_transport)
        return self._notification_transport

    def start_notifications(self) -> None:
        self.notifications = Outbox(self._send_notification, name=f"notifications {self.host}")

    def notify(self, event_type: str, payload: dict[str, Any]) -> None:
        """Queue a notification; never waits. Before ``start_notifications`` (an agent used only to check
        messages) there is no one to send it: dropped."""
        if self.notifications is not None:
            self.notifications.put(event_type, payload)

    def _send_notification(self, event_type: str, payload: dict[str, Any]) -> None:
        if self._notifier is None:
            self._notifier = messaging.notifier(self.conf, f"nodeagent.{self.host}", retry=1,
                                                transport=self._notifications_transport())
        self._notifier.info(messaging.request_context(self.host), event_type, payload)

    def listen(self, agent: Any) -> bool:
        """Start the agent's RPC server; False when the broker cannot be reached yet."""
        try:
            server = messaging.agent_server(self.transport(), self.host, agent)
            server.start()
        except Exception as exc:
            if not self._closed:
                self.log.warning("cannot listen for the coordinator yet: %s", exc)
            return False
        with self._lock:
            if not self._closed:
                self.server = server
                return True
        messaging.within(messaging.STOP_WAIT, lambda: self._stop_server(server))  # closed while it was starting
        return True

    def _stop_server(self, server: Any) -> None:
        messaging.stop_server(server, wake=lambda: messaging.wake_agent_server(self.transport(), self.host))

    def close(self) -> bool:
        """Stop listening, give queued notifications a short chance to leave, close the transports made
        here (shared ones are their owner's); False when the broker's side did not finish in time, which
        happens only when the broker does not answer (while it does, every connection is closed first)."""
        with self._lock:
            self._closed = True
            server, self.server = self.server, None
        steps = [lambda: self._stop_server(server)] if server is not None else []
        steps += [self.notifications.stop] if self.notifications is not None else []
        steps += [lambda t=t: messaging.close_transport(t) for t in self._own_transports]
        return messaging.within(messaging.STOP_WAIT, *steps, unless_answering=self.conf)
