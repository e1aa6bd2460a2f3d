"""The RPC between agents and the coordinator: each side's versioned client and endpoint together.

Like Neutron's ``agent/rpc.py``: the client that calls a side and the endpoint that
answers it sit side by side, with one version constant used by both the server's
``Target(version=...)`` and every ``prepare(version=...)``. Endpoints do no work: they
hand each request to a method of the agent or the coordinator they hold.

What travels is sealed by a channel of ``wire.protocol``: the payload inside is a message of
``nodeagent.wire.messages`` (a ``Report``, a ``Request``, a ``ReportAnswer``...), opened
and read by the side holding the key, never by the endpoint.

Agent API (``AgentAPI`` calls it, ``AgentEndpoint`` answers), on
``Target(topic="<control_exchange>.nodeagent", server=<host>)``:

* 1.0 - initial: ``apply_state`` (cast), ``plan_state`` (call: the diff, nothing applied),
  ``get_facts`` (call), ``report_now`` (fanout cast).
* 1.1 - the namespace ``nodeagent.agent``; ``get_facts`` and ``report_now`` removed (nothing called
  them). A 1.0 coordinator's calls (no namespace) are still answered.
  Later, with no new version: ``wake`` (cast, does nothing), which a stopping agent sends only to itself.
* 1.2 - ``report_next`` (cast): the coordinator has something to say (a node coming back, a push missed); the
  agent's next heartbeat is a full report, called and answered.

Coordinator API (``CoordinatorAPI`` calls it, ``CoordinatorEndpoint`` answers), on
``Target(topic="<control_exchange>.nodeagent-coordinator")``:

* 1.0 - initial: ``report_state`` and ``fetch_state`` (calls), answered with a signed reply.
* 1.1 - typed messages: the report is a ``messages.Report`` (its events ``Event``, their drift a
  ``DriftEvent``, its status an ``AgentStatus``), the fetch a ``messages.Request``, the answer a
  ``messages.ReportAnswer``, each with a ``version``; a report that does not read is refused
  naming the field. A 1.0 agent's report reads as version 1. Agents and the coordinator
  upgrade together, the coordinator first (a 1.0 coordinator refuses a 1.1 call).
* 1.2 - a reply names the digest of the sealed request it answers (as an agent's reply always did), not its
  sequence; calls carry a request context. A 1.1 agent refuses a reply without its sequence: upgrade the
  agents with the coordinator.
* 1.3 - a request the coordinator does not accept (its signature does not verify, its sequence is spent, its
  node unknown or revoked) is answered with an unsigned ``Rejection``, never a signed refusal. A 1.2 agent
  takes a rejection for a rogue answer, as it should.
  Later, with no new version: a drift event may carry ``by`` (a ``messages.Writer``) and the state
  ``ignored``; an agent that sends them needs a coordinator that reads them (coordinator first, as always).

Heartbeats (``messagingv2`` notifications of type ``nodeagent.heartbeat`` on the broker of ``transport_url``,
topic ``<control_exchange>.nodeagent-heartbeats``): an agent whose last report was answered alive with ``cast``
set, and that has nothing else to say (no events, no new facts, no new key), casts its signed ``Report`` there
instead of calling ``report_state``; the coordinators share its queue and take them in batches, answering
nothing. Every ``FULL_REPORT_EVERY``-th heartbeat, and every one after ``report_next``, is called again. Mixed
versions: a coordinator offers ``cast`` only to an agent whose report says ``held`` (so it reads the field, which
is sent only when set); an older coordinator never offers it, and its agents keep calling.

Notifications (``messagingv2``, topic ``<control_exchange>.notifications``) are for
operators' tools: ``nodeagent.drift.*`` carry a ``DriftEvent.to_dict()``.

RabbitMQ names a topic's queues after the topic alone, whatever the exchange: without the
``control_exchange`` prefix two fleets on one vhost would share their queues and meet.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
import warnings
from typing import Any, Callable

with warnings.catch_warnings():  # oslo.messaging imports eventlet via oslo.service and warns
    warnings.simplefilter("ignore")
    import oslo_messaging
    import oslo_messaging.opts
    from oslo_messaging import transport as _transport
    from oslo_messaging._drivers import amqpdriver as _amqpdriver
    from oslo_messaging._metrics import client as _metrics_client
    from oslo_messaging._tracing import client as _tracing_client
    from oslo_messaging.rpc import client as _rpc_client
from oslo_config import cfg

from nodeagent.wire.protocol import Rejection

LOG = logging.getLogger(__name__)

# oslo.messaging's RabbitMQ listener looks at its stop flag between two waits of
# heartbeat_timeout_threshold / heartbeat_rate / 2 seconds (capped at 5 s): with its defaults (60 / 3)
# stopping an RPC server took up to 5 s. A rate of 60 makes that wait 0.5 s, at the cost of waking every
# connection's thread twice a second: the coordinator (and the tools) keep it. An agent, asleep most of its
# life, keeps oslo's rate and wakes its listeners when it stops instead (``stop_server``, ``close_transport``).
# An operator's [oslo_messaging_rabbit] heartbeat_rate still wins.
PROMPT_STOP_HEARTBEAT_RATE = 60
AGENT_HEARTBEAT_RATE = 3  # oslo.messaging's own default: each connection's thread wakes every 10 s


def register_opts(conf: cfg.ConfigOpts) -> None:
    """oslo.messaging's options on ``conf`` (transport_url, rabbit, rpc_response_timeout...): it registers its
    tracing and metrics options on the global CONF only, so they are registered here from its private modules
    (there is no public list of them)."""
    conf.register_opts(_transport._transport_opts)  # control_exchange, which names the fleet's topics
    rabbit = "oslo_messaging_rabbit"
    if rabbit not in conf:
        conf.register_opts(dict(oslo_messaging.opts.list_opts())[rabbit], group=rabbit)
        conf.set_default("heartbeat_rate", PROMPT_STOP_HEARTBEAT_RATE, group=rabbit)
    if "rpc_response_timeout" in conf:
        return
    conf.register_opts(_tracing_client.oslo_messaging_tracing, group="oslo_messaging_tracing")
    conf.register_opts(_metrics_client.oslo_messaging_metrics, group="oslo_messaging_metrics")
    conf.register_opts(_rpc_client._client_opts)  # rpc_response_timeout, read before the first client
    oslo_messaging.set_transport_defaults("nodeagent")


AGENT_TOPIC = "nodeagent"
COORDINATOR_TOPIC = "nodeagent-coordinator"
AGENT_API_VERSION = "1.2"
COORDINATOR_API_VERSION = "1.3"
# As Neutron's RPC_NAMESPACE_STATE: the agent's methods live in a namespace of their own. The coordinator's
# stay in the default one: any consumer of its topic is answered by the same calls (the security suite's
# rogue coordinator among them), and what makes a reply count is its signature, never where it came from.
AGENT_NAMESPACE = "nodeagent.agent"
NOTIFICATION_TOPIC = "notifications"  # in the fleet's namespace too: <control_exchange>.notifications
HEARTBEAT_TOPIC = "nodeagent-heartbeats"
HEARTBEAT_EVENT = "nodeagent.heartbeat"
FULL_REPORT_EVERY = 30  # heartbeats: at least one in 30 is called (the agent hears the coordinators answer)

expose = oslo_messaging.expose
Target = oslo_messaging.Target
MessagingTimeout = oslo_messaging.MessagingTimeout
MessagingException = oslo_messaging.MessagingException


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


def heartbeat_transport(conf: cfg.ConfigOpts) -> oslo_messaging.Transport:
    """Where heartbeats travel: the RPC broker (``transport_url``), not the one notifications for operators'
    tools may be sent to. oslo.messaging sends and batches only notifications, on a transport of that kind."""
    register_opts(conf)
    return oslo_messaging.get_notification_transport(conf, url=conf.transport_url)


def heartbeat_sender(transport: oslo_messaging.Transport, host: str) -> Callable[[dict[str, Any]], None]:
    """Cast a node's sealed heartbeat to the coordinators (trying the broker once: the next heartbeat comes)."""
    notifier = oslo_messaging.Notifier(transport, publisher_id=f"nodeagent.{host}", driver="messagingv2",
                                       topics=[topic(transport.conf, HEARTBEAT_TOPIC)], retry=1)
    context = request_context(host)
    return lambda sealed: notifier.info(context, HEARTBEAT_EVENT, sealed)


class HeartbeatEndpoint:
    """The coordinators' side of the heartbeat topic: each batch to the intake, then the nodes it names asked
    for a full report."""

    def __init__(self, reports: Any, agents: Any):
        self.reports = reports
        self.agents = agents

    def info(self, batch: list[dict[str, Any]]) -> None:
        sealed = [message["payload"] for message in batch if message.get("event_type") == HEARTBEAT_EVENT]
        try:
            ask = self.reports.take_heartbeats(sealed)
        except Exception:  # a database away: these heartbeats are lost, the next ones come
            LOG.exception("%d heartbeats not taken", len(sealed))
            return
        for host in ask:
            try:
                self.agents.report_next(host)
            except Exception as exc:  # the node asks at its next full report anyway
                LOG.warning("could not ask %s for a full report: %s", host, exc)


def heartbeat_listener(transport: oslo_messaging.Transport, reports: Any, agents: Any,
                       batch_size: int) -> Any:
    """The coordinator's listener on the heartbeat topic (not started): all coordinators share one queue, each
    taking up to ``batch_size`` heartbeats at a time (at most its prefetch: it acknowledges a batch once
    taken), or what came within a second."""
    target = Target(topic=topic(transport.conf, HEARTBEAT_TOPIC))
    listener = oslo_messaging.get_batch_notification_listener(
        transport, [target], [HeartbeatEndpoint(reports, agents)], batch_size=batch_size, batch_timeout=1,
        executor="threading")
    listener._executor_cls = ServerThreads  # as rpc_server: oslo.messaging offers no way to choose
    return paced(listener)


STOP_WAIT = 1.0  # seconds a stop waits for the broker's side of it (at most 0.5 s when the broker is there)
CLOSE_WAIT = 30.0  # seconds it waits more while the broker answers (a burst of notifications still leaving)


def within(seconds: float, *steps: Callable[[], Any], unless_answering: cfg.ConfigOpts | None = None) -> bool:
    """Run ``steps`` one after the other in a thread of their own; True if all were done within ``seconds``.

    For stopping an RPC server (``stop``, ``wait``) and a transport (``cleanup``): with the broker
    away, oslo.messaging's listeners are busy reconnecting and look at their stop flag only once
    connected again. A process that is stopping leaves them to finish by themselves (daemon thread).
    With ``unless_answering`` (a configuration naming the broker), steps that take longer while that broker
    answers are waited for, up to ``CLOSE_WAIT`` more: they will end, and a stop leaves no connection open.
    """
    def run() -> None:
        for step in steps:
            step()
    thread = threading.Thread(target=run, name="stopping", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive() and unless_answering is not None and broker_answers(unless_answering):
        thread.join(CLOSE_WAIT)
    return not thread.is_alive()


def broker_answers(conf: cfg.ConfigOpts, timeout: float = 1.0) -> bool:
    """Whether a broker of ``transport_url`` accepts a TCP connection now (no AMQP is spoken)."""
    try:
        url = oslo_messaging.TransportURL.parse(conf, conf.transport_url)
    except (oslo_messaging.InvalidTransportURL, cfg.Error):
        return False
    for host in url.hosts:
        try:
            with socket.create_connection((host.hostname or "localhost", host.port or 5672), timeout):
                return True
        except OSError:
            continue
    return False


def broker_hosts(conf: cfg.ConfigOpts) -> str:
    """``host:port`` of each broker of ``transport_url``, without credentials (for messages)."""
    try:
        url = oslo_messaging.TransportURL.parse(conf, conf.transport_url)
    except (oslo_messaging.InvalidTransportURL, cfg.Error):
        return "no transport_url"
    return ", ".join(f"{host.hostname or 'localhost'}:{host.port or 5672}" for host in url.hosts) or "no broker"


AGENT_SERVER_THREADS = 4  # an agent answers a push or a plan at a time: oslo's 64 per server grew 10 threads per agent


def agent_defaults(conf: cfg.ConfigOpts) -> None:
    """The agent's own defaults for oslo.messaging (a configuration file may still set them)."""
    from oslo_messaging import opts

    register_opts(conf)
    for group, options in opts.list_opts():  # the server's own options are registered when it is made
        if group in (None, "DEFAULT"):
            conf.register_opts([o for o in options if o.dest == "executor_thread_pool_size"])
    opts.set_defaults(conf, executor_thread_pool_size=AGENT_SERVER_THREADS)
    conf.set_default("heartbeat_rate", AGENT_HEARTBEAT_RATE, group="oslo_messaging_rabbit")


# Reports a coordinator's listener takes from the broker before it has started on them. oslo's 0 (no limit) lets
# a hung coordinator (connected, answering nothing) take its share of every report until the broker drops its
# connection a minute later, so that some nodes go silent long enough to be marked down; with a bound it
# holds that many, and the broker hands the rest to the coordinators that answer.
COORDINATOR_PREFETCH = 32


def coordinator_defaults(conf: cfg.ConfigOpts) -> None:
    """The coordinator's own defaults for oslo.messaging (a configuration file may still set them)."""
    register_opts(conf)
    conf.set_default("rabbit_qos_prefetch_count", COORDINATOR_PREFETCH, group="oslo_messaging_rabbit")


def rpc_server(transport: oslo_messaging.Transport, target: oslo_messaging.Target,
               endpoints: list[Any]) -> oslo_messaging.RPCServer:
    server = oslo_messaging.get_rpc_server(transport, target, endpoints,
                                           access_policy=oslo_messaging.ExplicitRPCAccessPolicy)
    server._executor_cls = ServerThreads  # oslo.messaging offers no way to choose
    return server


class ServerThreads:
    """An RPC server's threads: what oslo.messaging asks of its executor (``submit``, ``shutdown``).

    Instead of futurist's pool (oslo's "threading" executor), whose idle threads wake every second to look
    at their stop flag: these block until work or the shutdown comes. Not the standard library's pool either:
    its threads are joined when the interpreter exits, and one replying to a broker that went away would
    hold the exit of a stopping agent until the broker is back; these are daemon threads, as futurist's.
    """

    def __init__(self, max_workers: int):
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._max = max_workers
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)  # one release per thread waiting for work
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._work.put((fn, args, kwargs))
        if self._idle.acquire(blocking=False):
            return
        with self._lock:
            if len(self._threads) < self._max:
                thread = threading.Thread(target=self._run, name=f"rpc {len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            fn, args, kwargs = item
            try:
                fn(*args, **kwargs)
            except Exception:  # oslo's server handles its own; a thread of the pool never dies of one
                LOG.exception("RPC server thread")
            self._idle.release()

    def shutdown(self, wait: bool = True) -> None:
        """Each thread ends after the work queued before this call."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()


class PacedPolls:
    """The heartbeat listener's polls, with a rest between batches.

    oslo.messaging's listener wakes for every message it waits for, and after each one looks again after 1,
    2, 4... ms (to send acknowledgements promptly): a coordinator taking 150 heartbeats/s from 300 agents spent
    62 % of its CPU in that polling (py-spy). Here a poll waits for one heartbeat as before, then rests while the
    next ones gather in the socket (the broker sends up to the prefetch unacknowledged), and takes them in one
    go with what comes within ``DRAIN``: 1.13 -> 0.69 ms of CPU per heartbeat (``benchmarks/scale.py``). The rest
    grows while batches come back short of ``batch_size`` and halves when one is full (the prefetch may have
    bounded it, not the rate: resting then would slow the intake); there is none while heartbeats queue (a
    batch's first one sent more than ``QUEUED`` ago: resting then let the queue grow until heartbeats were
    dropped as stale and hundreds of nodes marked down at 1,000 agents); a heartbeat waits at most ``MAX_REST``
    longer to be taken. Written here because oslo.messaging has no pacing of its own; it wraps the driver's
    listener (``PollStyleListener.poll``), the one place every batch passes."""

    MAX_REST = 0.25
    STEP = 0.05
    DRAIN = 0.01
    QUEUED = 0.5  # seconds a batch's first heartbeat waited in the queue: a backlog, taken without rests

    def __init__(self, listener: Any):
        self._listener = listener
        self.rest = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._listener, name)

    def poll(self, timeout: float | None = None, batch_size: int = 1, batch_timeout: float | None = None) -> list:
        first = self._listener.poll(timeout, batch_size=1, batch_timeout=batch_timeout)
        if not first or batch_size <= 1:
            return first
        # Heartbeats queueing (the coordinators slower than the fleet, one of them gone): a short batch then
        # says the workers have not acknowledged the last one yet, not that heartbeats come slowly.
        backlog = _queued_for(first[0]) > self.QUEUED
        if backlog:
            self.rest = 0.0
        elif self.rest:
            time.sleep(self.rest)
        batch = first + self._listener.poll(batch_size=batch_size - 1, batch_timeout=self.DRAIN)
        full = len(batch) >= min(batch_size, self._listener.prefetch_size or batch_size)
        if full:
            self.rest /= 2
        elif not backlog:
            self.rest = min(self.MAX_REST, self.rest + self.STEP)
        return batch


def _queued_for(incoming: Any) -> float:
    """Seconds since the heartbeat was sent (its ``sent_at``), 0 when it does not say."""
    try:
        sent_at = incoming.message["payload"]["payload"]["sent_at"]
        return max(0.0, time.time() - float(sent_at))
    except (AttributeError, KeyError, TypeError, ValueError):
        return 0.0


def paced(server: Any) -> Any:
    """``server`` (an oslo.messaging batch listener, not started) with its polls paced (``PacedPolls``)."""
    create = server._create_listener

    def create_paced() -> Any:
        listener = create()
        polls = getattr(listener, "_poll_style_listener", None)
        if polls is None:  # another oslo.messaging: unpaced, as it comes
            LOG.warning("heartbeat polls not paced: oslo.messaging's listener is not the one expected")
        else:
            listener._poll_style_listener = PacedPolls(polls)
        return listener
    server._create_listener = create_paced
    return server


def stop_server(server: oslo_messaging.RPCServer, wake: Callable[[], None] | None = None) -> None:
    """``server.stop()`` and ``server.wait()``, its listener woken by ``wake`` (a message to the server itself).

    oslo's listener looks at its stop flag only when a frame comes or its wait ends (up to 10 s). After a
    message it waits 1 ms, then twice as long each time: a message sent just before the flag is set, or
    just after, has it seen within milliseconds. ``wake`` may fail or hang (the broker away): it runs beside
    the stop, which then takes the listener's wait (``within`` bounds it), and is waited for at most
    ``STOP_WAIT`` afterwards (the connection it borrowed is back in the pool before the transport closes).
    """
    waking = None
    if wake is not None:
        waking = threading.Thread(target=_quietly, args=(wake, "wake the RPC server"), name="waking", daemon=True)
        waking.start()
    server.stop()
    server.wait()
    if waking is not None:
        waking.join(STOP_WAIT)


def _quietly(step: Callable[[], None], what: str) -> None:
    try:
        step()
    except Exception as exc:  # the broker is away: nothing to wake, the listeners are reconnecting
        LOG.debug("could not %s: %s", what, exc)


class _QuietReplyWaiter(_amqpdriver.ReplyWaiter):
    """oslo's waiter for the replies to a transport's calls, without its decaying wait.

    oslo's waits 1 ms after each reply, then twice as long each time up to 5 s (the pacing of a server's
    acknowledgements, which other threads queue for it): 13 wakeups after each reply, 1.3 a second for an
    agent heartbeating every 10 s. This waiter acknowledges in its own thread (``__call__``), so it has
    nothing to pace: it waits for the next frame, waking only for its connection's heartbeat check
    (every heartbeat_timeout_threshold / heartbeat_rate / 2 s). ``close_transport`` wakes it to stop.
    """

    def poll(self) -> None:
        while not self._thread_exit_event.is_set():
            try:
                self.conn.consume()  # no timeout: returns after a message, or once stop_consuming() was called
            except Exception:
                LOG.exception("Failed to process incoming message, retrying..")


# Made by the driver on a transport's first call (amqpdriver's _get_reply_q looks this name up then).
_amqpdriver.ReplyWaiter = _QuietReplyWaiter
# An idle RPC server's listener waits at most this long (oslo: 5 s) before looking at its stop flag and
# the acknowledgements queued for it; its connection's heartbeat check comes every 10 s at oslo's
# heartbeat rate, so waking at 5 s only doubled its wakeups. An acknowledgement is still sent within
# milliseconds: after a message, the listener waits 1 ms, then twice as long each time. At the coordinator's
# rate (60) the heartbeat check's 0.5 s is the shorter wait: nothing changes there.
_amqpdriver.ACK_REQUEUE_EVERY_SECONDS_MAX = 10.0
_WAKE_ID = "nodeagent-stop"


def close_transport(transport: oslo_messaging.Transport) -> None:
    """``transport.cleanup()``, its reply waiter told to stop and woken by a message to its own queue first
    (it waits for a frame: without one, the cleanup would wait for its heartbeat check, 10 s)."""
    driver = transport._driver
    waiter = getattr(driver, "_waiter", None)
    if isinstance(waiter, _QuietReplyWaiter) and waiter._thread is not None:
        waiter._thread_exit_event.set()
        waiter.conn.stop_consuming()
        waiter.listen(_WAKE_ID)  # a reply someone waits for: not logged as unexpected

        def wake() -> None:
            with driver._get_connection() as connection:
                connection.direct_send(driver._reply_q, {"_msg_id": _WAKE_ID, "ending": True})
        # Before the cleanup empties the connection pool; a broker away is not waited for (within bounds it).
        within(STOP_WAIT, lambda: _quietly(wake, "wake the reply waiter"))
    transport.cleanup()


def _host(conf: cfg.ConfigOpts) -> str | None:
    try:
        return conf.host
    except cfg.NoSuchOptError:  # a bare configuration (tests, tools): the context names no host
        return None


def request_context(host: str | None) -> dict[str, Any]:
    """The context every call and notification carries (as OpenStack services send theirs): a request id to
    follow it through both sides' logs, and who sent it. Trust never rests on it: the signed envelope does."""
    from oslo_context import context

    return context.RequestContext(request_id=None, user_name=host, overwrite=False).to_dict()


# -- the agent's API ------------------------------------------------------------------------------
class AgentAPI:
    """What the coordinator (and nodeagentctl) ask of agents."""

    def __init__(self, transport: oslo_messaging.Transport, timeout: int = 30, retry: int | None = None):
        """``retry``: connection retries per message (None: forever); the coordinator bounds them."""
        target = Target(topic=topic(transport.conf, AGENT_TOPIC), namespace=AGENT_NAMESPACE,
                        version=AGENT_API_VERSION)
        self.client = oslo_messaging.get_rpc_client(transport, target, timeout=timeout, retry=retry)
        self.host = _host(transport.conf)

    def apply_state(self, host: str, sealed: dict[str, Any]) -> None:
        self.client.prepare(server=host, version=AGENT_API_VERSION).cast(
            request_context(self.host), "apply_state", sealed=sealed)

    def plan_state(self, host: str, sealed: dict[str, Any]) -> dict[str, Any]:
        return self.client.prepare(server=host, version=AGENT_API_VERSION).call(
            request_context(self.host), "plan_state", sealed=sealed)

    def report_next(self, host: str) -> None:
        self.client.prepare(server=host, version=AGENT_API_VERSION).cast(request_context(self.host), "report_next")


class AgentEndpoint:
    """The agent's RPC face: each method hands the sealed request to the agent, which checks the signature."""

    def __init__(self, agent: Any, namespace: str | None = AGENT_NAMESPACE):
        self.target = Target(namespace=namespace, version=AGENT_API_VERSION)
        self.agent = agent

    @expose
    def apply_state(self, context: dict, sealed: Any) -> None:
        self.agent.queue_work("document", (sealed, "a push"))

    @expose
    def plan_state(self, context: dict, sealed: Any) -> dict[str, Any]:
        return self.agent.plan_request(sealed)

    @expose
    def report_next(self, context: dict) -> None:
        """Unsigned, and asks for nothing but a full report (the agent's own, signed; answered signed)."""
        self.agent.report_next()

    @expose
    def wake(self, context: dict) -> None:
        """Nothing: what a stopping agent casts to itself so its listener sees its stop flag at once."""


def wake_agent_server(transport: oslo_messaging.Transport, host: str) -> None:
    """Cast ``wake`` to the agent server of ``host`` (its own queue), trying the broker once."""
    target = Target(topic=topic(transport.conf, AGENT_TOPIC), namespace=AGENT_NAMESPACE, version=AGENT_API_VERSION)
    client = oslo_messaging.get_rpc_client(transport, target, retry=0)
    client.prepare(server=host).cast(request_context(host), "wake")


def agent_server(transport: oslo_messaging.Transport, host: str, agent: Any) -> oslo_messaging.RPCServer:
    """The RPC server of the agent of ``host`` (not started); it also answers a 1.0 coordinator (no namespace)."""
    target = Target(topic=topic(transport.conf, AGENT_TOPIC), server=host, version=AGENT_API_VERSION)
    return rpc_server(transport, target, [AgentEndpoint(agent), AgentEndpoint(agent, namespace=None)])


# -- the coordinator's API ------------------------------------------------------------------------
class CoordinatorAPI:
    """What an agent asks of the coordinator."""

    def __init__(self, transport: oslo_messaging.Transport, timeout: int = 10):
        target = Target(topic=topic(transport.conf, COORDINATOR_TOPIC), version=COORDINATOR_API_VERSION)
        self.client = oslo_messaging.get_rpc_client(transport, target, timeout=timeout)
        self.host = _host(transport.conf)

    # Bounded retries: an agent tries again at its next heartbeat rather than inside this one.
    def report_state(self, sealed: dict[str, Any]) -> dict[str, Any]:
        return self.client.prepare(version=COORDINATOR_API_VERSION, retry=1).call(
            request_context(self.host), "report_state", sealed=sealed)

    def fetch_state(self, sealed: dict[str, Any]) -> dict[str, Any] | None:
        return self.client.prepare(version=COORDINATOR_API_VERSION, retry=1).call(
            request_context(self.host), "fetch_state", sealed=sealed)


class CoordinatorEndpoint:
    """The coordinator's RPC face: only these two methods are callable (explicit access policy); the answer to
    an accepted request is signed by the coordinator's channel and bound to it, a rejection goes unsigned."""

    target = Target(version=COORDINATOR_API_VERSION)

    def __init__(self, reports: Any, channel: Any):
        self.reports = reports
        self.channel = channel

    @expose
    def report_state(self, context: dict, sealed: Any) -> dict[str, Any]:
        answer = self.reports.report_state(sealed)
        return self.channel.answer(sealed, answer if isinstance(answer, Rejection) else answer.to_dict())

    @expose
    def fetch_state(self, context: dict, sealed: Any) -> dict[str, Any]:
        return self.channel.answer(sealed, self.reports.fetch_state(sealed))


def coordinator_server(transport: oslo_messaging.Transport, host: str, reports: Any,
                       channel: Any) -> oslo_messaging.RPCServer:
    """The coordinator's RPC server (not started); every coordinator of a fleet listens on one topic."""
    target = Target(topic=topic(transport.conf, COORDINATOR_TOPIC), server=host, version=COORDINATOR_API_VERSION)
    return rpc_server(transport, target, [CoordinatorEndpoint(reports, channel)])
