"""An agent is an object: nothing made before start(), start()/stop() from any thread, stop() prompt and
idempotent. oslo.messaging's in-process "fake" driver stands in for the broker (no RabbitMQ needed);
tests/functional/test_agents_in_one_process.py does the same against the real one."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.cli import config
from nodeagent.node.agent import Agent
from nodeagent.wire import rpc, trust


def make_conf(directory: Path, host: str) -> object:
    key = directory / "coordinator.pub"
    if not key.exists():
        key.write_text(trust.public_text(Ed25519PrivateKey.generate().public_key()))
    (directory / f"{host}.conf").write_text("[DEFAULT]\ntransport_url = fake:/\nreport_interval = 1\n")
    conf = config.make_conf([str(directory / f"{host}.conf")], with_messaging=True)
    for name, value in {"host": host, "state_dir": str(directory / host / "state"),
                        "root": str(directory / host / "root"), "coordinator_public_key": str(key),
                        "systemctl": "false"}.items():
        conf.set_override(name, value)
    return conf


def agent_threads(host: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.endswith(f" {host}")]


def test_the_constructor_makes_nothing(tmp_path):
    agent = Agent(make_conf(tmp_path, "n1"))
    assert not (tmp_path / "n1").exists()
    assert agent_threads("n1") == []
    agent.stop()  # never started: nothing to stop, and no error
    assert agent.stopped.is_set()
    with pytest.raises(RuntimeError, match="agent n1 was stopped"):
        agent.start()


def test_agents_start_and_stop_from_any_thread_promptly_and_twice(tmp_path):
    conf = make_conf(tmp_path, "n1")
    transport = rpc.rpc_transport(conf)  # shared by both: closed by its owner, not by the agents
    agents = [Agent(make_conf(tmp_path, host), transport=transport) for host in ("n1", "n2")]
    try:
        starters = [threading.Thread(target=agent.start) for agent in agents]
        for thread in starters:
            thread.start()
        for thread in starters:
            thread.join(30)
        agents[0].start()  # a second start does nothing
        for agent in agents:
            assert (tmp_path / agent.host / "state" / "node.key").exists()
            deadline = time.monotonic() + 30
            while agent.server is None:  # listening: the fake driver answers at once
                assert time.monotonic() < deadline, "the agent never listened"
                time.sleep(0.05)
        started = time.monotonic()
        stoppers = [threading.Thread(target=agent.stop) for agent in agents for _ in range(2)]  # each twice
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(30)
            assert not thread.is_alive()
        assert time.monotonic() - started < 5  # about a tenth of a second; generous for a loaded machine
        assert all(agent.stopped.is_set() and agent.server is None for agent in agents)
        for agent in agents:
            agent._talker.join(10)  # it was told at once; an answer it waited for is dropped
            assert agent_threads(agent.host) == []
    finally:
        for agent in agents:
            agent.stop()
        rpc.close_transport(transport)
