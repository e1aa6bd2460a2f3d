"""Alerts to operators' webhooks: JSON POSTs with a timeout, retries with backoff, and a dead letter.

urllib is enough for one POST of a small JSON body; a sender thread keeps slow or
dead receivers from holding up the coordinator's RPC threads.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from typing import Any, Callable

LOG = logging.getLogger(__name__)


class WebhookSender:
    """Delivers each alert to every URL, in order; ``on_dead(url, alert, error)`` when one gives up."""

    def __init__(self, urls: list[str], timeout: float, retries: int,
                 on_dead: Callable[[str, dict[str, Any], str], None], first_delay: float = 0.5):
        self.urls = urls
        self.timeout = timeout
        self.retries = retries
        self.on_dead = on_dead
        self.first_delay = first_delay
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._thread.start()

    def send(self, alert: dict[str, Any]) -> None:
        if self.urls:
            self.queue.put(alert)

    def stop(self) -> None:
        self._stop.set()
        self.queue.put(None)
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            alert = self.queue.get()
            if alert is None:
                return
            for url in self.urls:
                self._deliver(url, alert)

    def _deliver(self, url: str, alert: dict[str, Any]) -> None:
        body = json.dumps(alert).encode()
        delay, error = self.first_delay, ""
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    if 200 <= answer.status < 300:
                        return
                    error = f"HTTP {answer.status}"
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                error = str(getattr(exc, "reason", exc))
            if attempt < self.retries and self._stop.wait(delay):
                break
            delay *= 2
        LOG.error("webhook %s gave up on %s: %s", url, alert.get("type"), error)
        self.on_dead(url, alert, error)
