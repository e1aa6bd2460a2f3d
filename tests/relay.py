"""A TCP relay in front of the shared RabbitMQ that a test can cut, so no test stops the host's broker.

``cut()`` closes every relayed connection and stops listening, so new ones are refused (what
a stopped broker looks like to a client); ``restore()`` listens on the same port and relays
again. Threads and sockets are enough: a relay of a few AMQP connections on loopback.
"""

from __future__ import annotations

import socket
import threading


class Relay:
    """Listens on 127.0.0.1:``port`` (chosen) and relays to ``target``."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5672)):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._listen()

    def _listen(self) -> None:
        threading.Thread(target=self._accept, args=(self.listener,), name="relay", daemon=True).start()

    def url(self, user: str = "guest", password: str = "guest", vhost: str = "") -> str:
        return f"rabbit://{user}:{password}@127.0.0.1:{self.port}/{vhost}"

    def cut(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; close alone would not
        except OSError:
            pass
        self.listener.close()
        self._drop_all()

    def restore(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self._listen()

    def close(self) -> None:
        self._closed = True
        self.cut()

    def _drop_all(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self.accepted += 1
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
