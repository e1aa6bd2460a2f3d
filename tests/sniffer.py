"""A consumer of everything published on a fleet's control exchange, as any user of the broker could bind one:
what crosses the bus, read by tests (no secret travels in clear; heartbeats are cast, not called)."""

from __future__ import annotations

import json
import threading
import uuid

import kombu

BROKER = "amqp://guest:guest@127.0.0.1:5672//"


class Sniffer:
    """A consumer bound to everything published on a fleet's control exchange (as any broker user could)."""

    def __init__(self, exchange: str):
        self.bodies: list[str] = []
        self.connection = kombu.Connection(BROKER)
        topic = kombu.Exchange(exchange, type="topic", durable=False, auto_delete=False)
        self.queue = kombu.Queue(f"sniffer-{uuid.uuid4().hex}", exchange=topic, routing_key="#",
                                 auto_delete=True, durable=False)
        self.consumer = self.connection.Consumer([self.queue], callbacks=[self._got], accept=["json", "text/plain"])
        self.consumer.consume()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _got(self, body, message) -> None:
        self.bodies.append(body if isinstance(body, str) else json.dumps(body))
        message.ack()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                self.connection.drain_events(timeout=0.2)
            except TimeoutError:
                continue
            except Exception:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.connection.release()
