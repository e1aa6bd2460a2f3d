"""What the coordinator signs, against its real process on the real RabbitMQ: an answer to a request it accepted
(signature verified, sequence fresh), never a refusal that whoever sent the request could hand to a node.

The attack (issue #23, item 1): a consumer on the coordinator's queue sends a node's sealed request on to the
coordinator twice and returns the second answer; before, that answer was a coordinator-signed "refused:
replayed", bound to the node's own request, and the node took it as genuine.
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.cli import config
from nodeagent.testing.lab import Fleet
from nodeagent.testing.waiting import wait_until
from nodeagent.wire import rpc as messaging, trust
from nodeagent.wire.messages import Report, Request
from nodeagent.wire.protocol import NodeChannel, Refused
from tests.functional.test_security import converged, document, events, set_state, start_fleet


def serving(fleet: Fleet) -> None:
    fleet.start("coordinator")
    wait_until(lambda: "coordinator serving" in (fleet.directory / "coordinator.log").read_text(), timeout=30)


@contextlib.contextmanager
def served(fleet: Fleet) -> Iterator[tuple[Fleet, messaging.CoordinatorAPI]]:
    """The fleet's coordinator serving, and an RPC client to it (as whoever is on the broker holds)."""
    transport = messaging.rpc_transport(config.make_conf([str(fleet.coordinator_conf)], with_messaging=True))
    try:
        serving(fleet)
        yield fleet, messaging.CoordinatorAPI(transport)
    finally:
        transport.cleanup()
        fleet.close()


def node_channel(fleet: Fleet, host: str) -> NodeChannel:
    """A node's end of the protocol, held by the test (the real code an agent uses)."""
    state = fleet.directory / host
    state.mkdir(mode=0o700)
    channel = NodeChannel(host, state, state / "node.key", fleet.public_key)
    channel.open()
    return channel


def report(host: str) -> Report:
    return Report(node=host, seq=0, sent_at=time.time())


@pytest.fixture
def coordinator(tmp_path):
    with served(Fleet(tmp_path, auto_accept=True)) as served_fleet:
        yield served_fleet


def test_only_an_accepted_request_gets_a_signed_answer(coordinator):
    fleet, api = coordinator
    channel = node_channel(fleet, "relnode1")
    sealed = channel.sign_request(report("relnode1"))
    answer = channel.read_reply(api.report_state(sealed.to_dict()), sealed)  # first contact: auto-accepted
    assert answer["status"] == "new"
    fetch = channel.sign_request(Request(node="relnode1", seq=0, sent_at=time.time()))
    assert channel.read_reply(api.fetch_state(fetch.to_dict()), fetch) is None  # no document yet: a signed None

    unsigned = {"payload": {"node": "relnode1", "seq": 4242, "status": {"generation": 0}}}
    forged = trust.seal({"node": "relnode1", "seq": 4243, "status": {"generation": 0}}, Ed25519PrivateKey.generate())
    for method, request in (("report_state", unsigned), ("report_state", forged), ("fetch_state", forged),
                            ("report_state", sealed.to_dict()), ("fetch_state", fetch.to_dict())):  # two replays
        answer = getattr(api, method)(request)
        assert "signature" not in answer and answer["kind"] == "rejection", (method, answer)
    with pytest.raises(Refused, match="an unsigned rejection, not taken as the coordinator's: 'replayed"):
        channel.read_reply(api.report_state(sealed.to_dict()), sealed)
    assert events(fleet, "--type", "report.refused")  # recorded (once per window)


class Relay:
    """A consumer on the coordinator's topic: each report goes on to the coordinator twice, the second
    answer (to a replay) comes back to the node."""

    target = messaging.Target(version=messaging.COORDINATOR_API_VERSION)

    def __init__(self, coordinator: messaging.CoordinatorAPI):
        self.coordinator = coordinator.client.prepare(server="coordinator")
        self.relayed = 0

    @messaging.expose
    def report_state(self, context, sealed):
        self.coordinator.call(context, "report_state", sealed=sealed)
        answer = self.coordinator.call(context, "report_state", sealed=sealed)
        self.relayed += 1
        return answer

    @messaging.expose
    def fetch_state(self, context, sealed):
        return self.coordinator.call(context, "fetch_state", sealed=sealed)


def test_an_agent_takes_no_refusal_a_relay_got_by_replaying_its_report(tmp_path):
    # Every heartbeat called (cast ones have no answer to replay), so that the relay gets several.
    fleet = start_fleet(tmp_path, "relnode1", coordinator_options={"heartbeat_casts": "false"})
    conf = config.make_conf([str(fleet.coordinator_conf)], with_messaging=True)
    transport = messaging.rpc_transport(conf)
    relay = Relay(messaging.CoordinatorAPI(transport))
    server = messaging.rpc_server(transport, messaging.Target(
        topic=messaging.topic(conf, messaging.COORDINATOR_TOPIC), server="relay"), [relay])
    server.start()
    try:
        wait_until(lambda: relay.relayed >= 3, timeout=30)
        set_state(fleet, "relnode1", document("x"), 1)  # the coordinator's own answers still count
        assert converged(fleet, "relnode1", 1)
        log = (tmp_path / "relnode1.log").read_text()
        assert "the coordinator refused this node's report" not in log
        wait_until(lambda: [e for e in events(fleet, "--type", "state.refused")
                            if "answer to report_state: an unsigned rejection" in e["Detail"]], timeout=30)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
        fleet.close()
