"""The web view as one WSGI application: the pages, behind the configured access, refusing every write.

Flask, because it is what Keystone's API is built on (an oslo project's choice, well kept, Jinja2 already ours);
Neutron's pecan and Placement's webob + routes would both ask more code for the same few GET pages (routes has had
no release since 2020). Order of the checks: who (401), may they look (403), then the method (405): a request
that is not a GET or HEAD is refused whoever sends it, since nothing here writes.
"""

from __future__ import annotations

import datetime
import threading
import time
from typing import Any, Callable

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from nodeagent.fleet import nodequery
from nodeagent.fleet.errors import InvalidInput
from nodeagent.fleet.inventory import Inventory
from nodeagent.fleet.web.auth import access_for
from nodeagent.fleet.web.pages import NAV, Sources, pages

READ_METHODS = ("GET", "HEAD")
# No script at all, styles inline, nothing framed or sent elsewhere: a page shows the fleet and nothing else.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Server": "nodeagent",  # not the server's software and Python versions
}


def make_app(conf: Any, inventory: Inventory, verifier: Any) -> Callable:
    """The WSGI application of the web view (``[web]`` options), wrapped in its access check."""
    app = Flask(__name__)
    access = access_for(conf)
    app.extensions["nodeagent"] = Sources(inventory, _every(conf.neutron.check_interval,
                                                            lambda: nodequery.neutron_column(verifier)),
                                          conf.web.refresh)
    app.register_blueprint(pages)
    app.add_template_filter(_when, "when")
    app.add_template_global(NAV, "nav")

    @app.before_request
    def guard() -> Response | None:
        who = access.identify(request.environ)
        if who is None:
            return _refusal(401, "Log in to see the fleet.",
                            {"WWW-Authenticate": access.challenge} if access.challenge else {})
        if not who.may_look:
            return _refusal(403, "The admin or reader role is needed to see the fleet.")
        if request.method not in READ_METHODS:
            return _refusal(405, "This view only reads: nothing can be changed here.",
                            {"Allow": ", ".join(READ_METHODS)})
        return None

    @app.after_request
    def secure(response: Response) -> Response:
        response.headers.update(HEADERS)
        return response

    @app.context_processor
    def refresh() -> dict[str, Any]:
        return {"refresh": conf.web.refresh, "served_by": conf.host}  # several coordinators serve the same view

    @app.errorhandler(InvalidInput)
    def invalid(exc: InvalidInput) -> Response:
        return _refusal(400, str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _refusal(exc.code or 500, exc.description or exc.name)

    app.wsgi_app = access.wrap(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _refusal(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(render_template("error.html", code=code, message=message), code, headers or {})
    response.headers.update(HEADERS)
    return response


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _every(seconds: float, make: Callable[[], Any]) -> Callable[[], Any]:
    """``make()``'s value, made again at most every ``seconds``: the Neutron column asks Neutron once per
    check_interval, however many pages are served."""
    lock = threading.Lock()
    kept: dict[str, Any] = {}

    def value() -> Any:
        with lock:
            if "at" not in kept or time.monotonic() - kept["at"] >= seconds:
                kept["value"], kept["at"] = make(), time.monotonic()
            return kept["value"]
    return value
