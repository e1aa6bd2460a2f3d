"""An agent's check of a pushed document (Agent.verify_document, over wire.trust and wire.box): signed by
the coordinator's key, encrypted for this node, meant for this node, not older than the one held, valid.
A real agent object on a scratch state directory; nothing is sent (no broker needed)."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.cli import config
from nodeagent.node.agent import Agent
from nodeagent.wire import box, trust

FILE = {"id": "conf", "driver": "file", "path": "/etc/neutron/a.conf", "content": "a\n"}


@pytest.fixture
def coordinator_key(tmp_path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "coordinator.pub").write_text(trust.public_text(key.public_key()) + "\n")
    return key


@pytest.fixture
def agent(tmp_path, coordinator_key):
    conf_file = tmp_path / "agent.conf"
    conf_file.write_text(f"[DEFAULT]\nhost = n1\nroot = {tmp_path / 'root'}\nstate_dir = {tmp_path / 'state'}\n"
                         f"coordinator_public_key = {tmp_path / 'coordinator.pub'}\nbackup_dir =\n")
    agent = Agent(config.make_conf([str(conf_file)]))
    agent.prepare()  # state directory and keys, as start() makes them; nothing is started
    yield agent
    agent.stop()  # no thread of this test outlives it


def document(node: str = "n1", generation: int = 1, resources: list | None = None) -> dict:
    return {"node": node, "generation": generation, "resources": [FILE] if resources is None else resources}


def signed(key, body: dict) -> dict:
    return trust.seal({"kind": "document", "document": body, "issued_at": time.time()}, key)


def encrypted(key, agent: Agent, body: dict, node: str = "n1") -> dict:
    """As the coordinator sends it: encrypted for the node's box key, bound to node and generation."""
    sealed_body = box.encrypt_for(agent.channel.box_keys[0].public_key(), body, f"{node}:{body['generation']}".encode())
    return trust.seal({"kind": "document", "node": node, "generation": body["generation"],
                       "encrypted": sealed_body, "issued_at": time.time()}, key)


def test_a_signed_document_in_clear_is_accepted_from_the_cache_only(agent, coordinator_key):
    accepted = agent.worker.verify_document(signed(coordinator_key, document(generation=3)), cached=True)
    assert accepted.generation == 3 and [r.id for r in accepted.resources] == ["conf"]
    with pytest.raises(trust.Refused, match="in clear, and this node has an encryption key"):
        agent.worker.verify_document(signed(coordinator_key, document(generation=3)))


def test_a_document_older_than_its_max_age_is_refused(agent, coordinator_key):
    sealed = encrypted(coordinator_key, agent, document(generation=3))
    assert agent.worker.verify_document(sealed, max_age=60).generation == 3
    old = trust.seal({**trust.unseal(sealed, coordinator_key.public_key()), "issued_at": time.time() - 61},
                     coordinator_key)
    with pytest.raises(trust.Refused, match="too old: issued 61 s ago, document_max_age is 60 s"):
        agent.worker.verify_document(old, max_age=60)
    assert agent.worker.verify_document(old).generation == 3  # no bound asked (the cache)


def test_an_encrypted_document_is_opened_with_the_nodes_key(agent, coordinator_key):
    accepted = agent.worker.verify_document(encrypted(coordinator_key, agent, document(generation=4)))
    assert accepted.generation == 4


def test_a_document_signed_by_another_key_is_refused(agent):
    with pytest.raises(trust.Refused, match="bad signature"):
        agent.worker.verify_document(signed(Ed25519PrivateKey.generate(), document()))


def test_a_document_for_another_node_is_refused(agent, coordinator_key):
    with pytest.raises(trust.Refused, match="meant for node 'n2', this is 'n1'"):
        agent.worker.verify_document(signed(coordinator_key, document(node="n2")))
    with pytest.raises(trust.Refused, match="meant for node 'n2', this is 'n1'"):
        agent.worker.verify_document(encrypted(coordinator_key, agent, document(node="n2"), node="n2"))


def test_an_encrypted_document_moved_to_another_generation_is_refused(agent, coordinator_key):
    sealed = encrypted(coordinator_key, agent, document(generation=5))
    sealed = trust.seal({**trust.unseal(sealed, coordinator_key.public_key()), "generation": 6}, coordinator_key)
    with pytest.raises(trust.Refused):
        agent.worker.verify_document(sealed)


def test_an_older_document_is_refused_and_the_same_one_only_when_allowed(agent, coordinator_key):
    assert agent.worker.take(encrypted(coordinator_key, agent, document(generation=5)), "a test")  # held: 5
    with pytest.raises(trust.Refused, match="stale: generation 4 is older than the generation 5 held"):
        agent.worker.verify_document(encrypted(coordinator_key, agent, document(generation=4)))
    assert agent.worker.verify_document(encrypted(coordinator_key, agent, document(generation=5))).generation == 5
    with pytest.raises(trust.Refused, match="stale: generation 5"):
        agent.worker.verify_document(encrypted(coordinator_key, agent, document(generation=5)), allow_same=False)
    other = document(generation=5, resources=[{**FILE, "content": "b\n"}])
    with pytest.raises(trust.Refused, match="another document with the generation 5 held"):
        agent.worker.verify_document(encrypted(coordinator_key, agent, other))


@pytest.mark.parametrize("payload, reason", [
    ({"kind": "request", "document": document()}, "not a document"),
    ({"kind": "document", "document": "text"}, "not a document"),
])
def test_what_is_not_a_document_is_refused(agent, coordinator_key, payload, reason):
    with pytest.raises(trust.Refused, match=reason):
        agent.worker.verify_document(trust.seal(payload, coordinator_key))


def test_an_invalid_document_is_refused_with_the_resource_and_field_named(agent, coordinator_key):
    bad = document(resources=[{**FILE, "path": "etc/neutron/a.conf"}])
    with pytest.raises(trust.Refused, match="invalid document: .*conf.*path"):
        agent.worker.verify_document(encrypted(coordinator_key, agent, bad))
