"""oslo.messaging between agents and coordinator: targets, versioned RPC clients, notifications.

Like Neutron's agents: a versioned ``Target`` per side, ``prepare(version=...)`` on
every call, and notifications (``messagingv2``) for operators' tools.

* agent server ``Target(topic="<control_exchange>.nodeagent", server=<host>)``: ``apply_state``
  (cast), ``plan_state`` (call), ``get_facts`` (call), and ``report_now`` (fanout cast);
* coordinator server ``Target(topic="<control_exchange>.nodeagent-coordinator")``: ``report_state``
  and ``fetch_state`` (calls).

RabbitMQ names a topic's queues after the topic alone, whatever the exchange: without the
``control_exchange`` prefix two fleets on one vhost would share their queues and meet.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Callable

with warnings.catch_warnings():  # oslo.messaging imports eventlet via oslo.service and warns
    warnings.simplefilter("ignore")
    import oslo_messaging
from oslo_config import cfg

from nodeagent.kit.config import register_messaging_opts as register_opts

AGENT_TOPIC = "nodeagent"
COORDINATOR_TOPIC = "nodeagent-coordinator"
AGENT_API_VERSION = "1.0"
COORDINATOR_API_VERSION = "1.0"
NOTIFICATION_TOPIC = "notifications"  # in the fleet's namespace too: <control_exchange>.notifications


def topic(conf: cfg.ConfigOpts, name: str) -> str:
    """``name`` in this fleet's namespace (its ``control_exchange``), e.g. ``fleet1.nodeagent``."""
    register_opts(conf)
    return f"{conf.control_exchange}.{name}"


def rpc_transport(conf: cfg.ConfigOpts) -> oslo_messaging.Transport:
    return oslo_messaging.get_rpc_transport(conf)


def notification_transport(conf: cfg.ConfigOpts) -> oslo_messaging.Transport:
    return oslo_messaging.get_notification_transport(conf)


def notifier(conf: cfg.ConfigOpts, publisher: str, retry: int | None = None,
             transport: oslo_messaging.Transport | None = None) -> oslo_messaging.Notifier:
    """``retry``: connection retries per notification (None: forever, only for callers that may wait);
    ``transport``: a notification transport to share (default: a new one)."""
    transport = transport or notification_transport(conf)
    return oslo_messaging.Notifier(transport, publisher_id=publisher, driver="messagingv2",
                                   topics=[topic(conf, NOTIFICATION_TOPIC)], retry=retry)


STOP_WAIT = 2.0  # seconds a stop waits for the broker's side of it (about 0.5 s when the broker is there)


def within(seconds: float, *steps: Callable[[], Any]) -> bool:
    """Run ``steps`` one after the other in a thread of their own; True if all were done within ``seconds``.

    For stopping an RPC server (``stop``, ``wait``) and a transport (``cleanup``): with the broker
    away, oslo.messaging's listeners are busy reconnecting and look at their stop flag only once
    connected again. A process that is stopping leaves them to finish by themselves (daemon thread).
    """
    def run() -> None:
        for step in steps:
            step()
    thread = threading.Thread(target=run, name="stopping", daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def rpc_server(transport: oslo_messaging.Transport, target: oslo_messaging.Target,
               endpoints: list[Any]) -> oslo_messaging.RPCServer:
    return oslo_messaging.get_rpc_server(transport, target, endpoints,
                                         access_policy=oslo_messaging.ExplicitRPCAccessPolicy)


class AgentClient:
    """What the coordinator (and nodeagentctl) ask of agents."""

    def __init__(self, transport: oslo_messaging.Transport, timeout: int = 30):
        target = oslo_messaging.Target(topic=topic(transport.conf, AGENT_TOPIC), version=AGENT_API_VERSION)
        self.client = oslo_messaging.get_rpc_client(transport, target, timeout=timeout)

    def apply_state(self, host: str, sealed: dict[str, Any]) -> None:
        self.client.prepare(server=host, version="1.0").cast({}, "apply_state", sealed=sealed)

    def plan_state(self, host: str, sealed: dict[str, Any]) -> dict[str, Any]:
        return self.client.prepare(server=host, version="1.0").call({}, "plan_state", sealed=sealed)

    def get_facts(self, host: str, sealed: dict[str, Any]) -> dict[str, Any]:
        return self.client.prepare(server=host, version="1.0").call({}, "get_facts", sealed=sealed)

    def report_now(self, sealed: dict[str, Any]) -> None:
        self.client.prepare(fanout=True, version="1.0").cast({}, "report_now", sealed=sealed)


class CoordinatorClient:
    """What an agent asks of the coordinator."""

    def __init__(self, transport: oslo_messaging.Transport, timeout: int = 10):
        target = oslo_messaging.Target(topic=topic(transport.conf, COORDINATOR_TOPIC),
                                       version=COORDINATOR_API_VERSION)
        self.client = oslo_messaging.get_rpc_client(transport, target, timeout=timeout)

    # Bounded retries: an agent tries again at its next heartbeat rather than inside this one.
    def report_state(self, sealed: dict[str, Any]) -> dict[str, Any]:
        return self.client.prepare(version="1.0", retry=1).call({}, "report_state", sealed=sealed)

    def fetch_state(self, sealed: dict[str, Any]) -> dict[str, Any] | None:
        return self.client.prepare(version="1.0", retry=1).call({}, "fetch_state", sealed=sealed)


expose = oslo_messaging.expose
Target = oslo_messaging.Target
MessagingTimeout = oslo_messaging.MessagingTimeout
MessagingException = oslo_messaging.MessagingException
