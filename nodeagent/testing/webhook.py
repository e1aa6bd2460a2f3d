"""An operator's webhook endpoint on loopback for tests: every body the coordinator POSTs, kept in order."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


class Webhook:
    """Listens on 127.0.0.1 (a free port) until ``close()``; ``bodies`` are the raw texts, ``received`` the JSON
    alerts (a body that is not JSON is kept in ``bodies`` only)."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.received: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                hook.bodies.append(body)
                try:
                    hook.received.append(json.loads(body))
                except ValueError:
                    pass
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Webhook":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
