"""Serving the web view from the coordinator's process: a threaded ``wsgiref`` server on ``[web] address``.

The standard library's server, one thread a request, as prometheus_client serves the metrics beside it: a few
operators' browsers, not an API under load (put a TLS proxy in front for anything but loopback).
"""

from __future__ import annotations

import logging
import threading
from socketserver import ThreadingMixIn
from typing import Any, Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from nodeagent.fleet.errors import InvalidInput

LOG = logging.getLogger(__name__)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Handler(WSGIRequestHandler):
    server_version, sys_version = "nodeagent", ""  # no Python version in the Server header
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        LOG.debug("web: %s %s", self.address_string(), format % args)


class WebServer:
    """The view served on ``address`` (host:port) in a thread of its own until ``stop()``."""

    def __init__(self, app: Callable, address: str):
        host, port = split_address(address)
        try:
            self.httpd = make_server(host, port, app, server_class=_Server, handler_class=_Handler)
        except OSError as exc:  # in use, not an address of this host, a name that does not resolve
            raise InvalidInput(f"[web] address '{address}': cannot serve there ({exc.strerror or exc})") from None
        self.port = self.httpd.server_port
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="web", daemon=True)

    def start(self) -> "WebServer":
        self.thread.start()
        LOG.info("web view on http://%s:%d/", self.httpd.server_address[0], self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def split_address(address: str) -> tuple[str, int]:
    """``127.0.0.1:8480`` -> ('127.0.0.1', 8480); a wrong one is an error naming the option."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InvalidInput(f"[web] address '{address}': expected host:port, e.g. 127.0.0.1:8480")
    return host, int(port)


def start(conf: Any, inventory: Any, verifier: Any) -> WebServer:
    """The coordinator's web view, serving (``nodeagentctl serve`` with ``[web] address`` or ``--web``)."""
    from nodeagent.fleet.web.app import make_app

    split_address(conf.web.address)  # a wrong address is said before anything else
    return WebServer(make_app(conf, inventory, verifier), conf.web.address).start()
