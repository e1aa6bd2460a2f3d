"""Each side's client and endpoint speak the version their constant declares (oslo.messaging's in-process
``fake`` driver: the dispatcher that checks versions is the real one, no broker needed)."""

from __future__ import annotations

import uuid

import pytest
from oslo_config import cfg

from nodeagent.testing.waiting import wait_until
from nodeagent.wire import rpc
from nodeagent.wire.messages import ReportAnswer


class Reports:
    """Stands in for the coordinator's intake behind the endpoint: answers with what it was asked."""

    def report_state(self, sealed):
        return ReportAnswer(status="alive", reason=str(sealed))

    def fetch_state(self, sealed):
        return None


class Channel:
    def answer(self, request, answer):
        return {"reply": answer}


class Agent:
    def __init__(self):
        self.queued = []

    def queue_work(self, kind, item):
        self.queued.append((kind, item))

    def plan_request(self, sealed):
        return {"planned": sealed}


@pytest.fixture
def transport():
    conf = cfg.ConfigOpts()
    rpc.register_opts(conf)
    conf([], project="nodeagent")
    # A fleet of its own: the fake driver's queues are per process.
    conf.set_override("control_exchange", f"test-{uuid.uuid4().hex[:8]}")
    conf.set_override("transport_url", "fake:/")
    transport = rpc.rpc_transport(conf)
    yield transport
    transport.cleanup()


@pytest.fixture
def coordinator_server(transport):
    server = rpc.coordinator_server(transport, "c1", Reports(), Channel())
    server.start()
    yield server
    server.stop()
    server.wait()


def test_the_endpoints_declare_their_sides_version_and_namespace():
    coordinator, agent = rpc.CoordinatorEndpoint(Reports(), Channel()), rpc.AgentEndpoint(Agent())
    assert (coordinator.target.version, coordinator.target.namespace) == (rpc.COORDINATOR_API_VERSION, None)
    assert (agent.target.version, agent.target.namespace) == (rpc.AGENT_API_VERSION, rpc.AGENT_NAMESPACE)


def test_a_report_reaches_the_coordinator_and_its_answer_comes_back(transport, coordinator_server):
    client = rpc.CoordinatorAPI(transport, timeout=5)
    answer = client.report_state({"payload": "1"})["reply"]
    assert ReportAnswer.from_dict(answer) == ReportAnswer(status="alive", reason="{'payload': '1'}")
    assert client.fetch_state({"payload": 2}) == {"reply": None}


def test_a_call_of_a_newer_api_than_the_server_speaks_is_refused(transport, coordinator_server):
    major, minor = rpc.COORDINATOR_API_VERSION.split(".")
    client = rpc.CoordinatorAPI(transport, timeout=5).client
    with pytest.raises(Exception, match="UnsupportedVersion|version"):
        client.prepare(version=f"{major}.{int(minor) + 1}").call({}, "report_state", sealed={})


def test_a_push_and_a_plan_reach_the_agent(transport):
    agent = Agent()
    server = rpc.agent_server(transport, "n1", agent)
    server.start()
    try:
        client = rpc.AgentAPI(transport, timeout=5)
        assert client.plan_state("n1", {"doc": 1}) == {"planned": {"doc": 1}}
        client.apply_state("n1", {"doc": 2})
        assert wait_until(lambda: agent.queued, 5, "the push") == [("document", ({"doc": 2}, "a push"))]
    finally:
        server.stop()
        server.wait()
