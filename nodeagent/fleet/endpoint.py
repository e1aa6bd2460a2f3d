"""The coordinator's RPC endpoint: what oslo.messaging dispatches agents' calls to."""

from __future__ import annotations

from typing import Any


def CoordinatorEndpoint(coordinator: Any) -> Any:  # noqa: N802 - builds the endpoint class lazily
    """The RPC face of the coordinator: only these two methods are callable (explicit access policy);
    every answer is signed and names the request it answers."""
    from nodeagent.wire import rpc as messaging

    class Endpoint:
        target = messaging.Target(version=messaging.COORDINATOR_API_VERSION)

        @messaging.expose
        def report_state(self, context: dict, sealed: dict[str, Any]) -> dict[str, Any]:
            return coordinator.signed_reply(sealed, coordinator.report_state(sealed))

        @messaging.expose
        def fetch_state(self, context: dict, sealed: dict[str, Any]) -> dict[str, Any] | None:
            return coordinator.signed_reply(sealed, coordinator.fetch_state(sealed))

    return Endpoint()
