"""What the coordinator tells the world: notifications on the bus and alerts to webhooks.

Both are queued for sender threads: a broker outage or a slow webhook must not hold up
the down check or the RPC threads.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from nodeagent.fleet.inventory import Inventory
from nodeagent.process.metrics import CoordinatorMetrics


class Notices:
    """The notification outbox and, while serving, the webhook sender."""

    def __init__(self, conf: cfg.ConfigOpts, inventory: Inventory, metrics: CoordinatorMetrics):
        self.conf = conf
        self.inventory = inventory
        self.metrics = metrics
        self._notifier = None
        self._outbox: Any = None
        self.alerts: Any = None  # a WebhookSender while serving

    def notify(self, event_type: str, payload: dict[str, Any]) -> None:
        """Queued for a sender thread: a broker outage must not hold up the down check or RPC threads."""
        from nodeagent.wire.outbox import Outbox

        if self._outbox is None:
            self._outbox = Outbox(self._send_notification, name="notifications")
        self._outbox.put(event_type, payload)

    def _send_notification(self, event_type: str, payload: dict[str, Any]) -> None:
        from nodeagent.wire import rpc as messaging

        if self._notifier is None:
            messaging.register_opts(self.conf)
            self._notifier = messaging.notifier(self.conf, "nodeagent.coordinator", retry=1)
        self._notifier.info({}, event_type, payload)

    def alert(self, alert: dict[str, Any]) -> None:
        if self.alerts is not None:
            self.alerts.send(alert)

    def start_webhooks(self) -> None:
        from nodeagent.fleet.alerts import WebhookSender

        group = self.conf.coordinator
        self.alerts = WebhookSender(group.webhooks, group.webhook_timeout, group.webhook_retries, self._dead_letter)

    def stop_webhooks(self) -> None:
        self.alerts.stop()

    def _dead_letter(self, url: str, alert: dict[str, Any], error: str) -> None:
        self.metrics.webhook_failures.labels(url).inc()
        self.inventory.add_event(alert.get("node"), "webhook.dead_letter",
                                 f"{url} did not take {alert.get('type')} {alert.get('id', '')}: {error}")
