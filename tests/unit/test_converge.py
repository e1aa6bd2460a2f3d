"""Converging the fleet is all or nothing: render every node, check, store everything in one transaction, then push.

A real SQLite inventory and the real RabbitMQ behind a relay a test can cut (a broker outage as the
coordinator sees it: connections refused). No agent runs: what a push would bring, the agent fetches.
"""

from __future__ import annotations

import itertools
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.fleet import enrolment
from nodeagent.fleet.coordinator import Coordinator, FleetInconsistent, PushFailed
from nodeagent.fleet.roles import RoleError
from nodeagent.cli import config
from nodeagent.wire import box, messages, trust
from tests.conftest import run_cli
from tests.relay import Relay

ROLE = """resources:
  - id: tunnel
    driver: ini
    path: /etc/neutron/tunnel.ini
    settings:
      ovs:
        local_ip: "{{ ipv4_of(uplink) }}"
        tag: "{{ tag }}"
"""
# n1 has both uplinks; n2 only eth0: moving the site's uplink to eth1 cannot render for n2.
INTERFACES = {"n1": {"eth0": {"ipv4": ["198.18.0.1/24"]}, "eth1": {"ipv4": ["198.18.1.1/24"]}},
              "n2": {"eth0": {"ipv4": ["198.18.0.2/24"]}}}
_sequence = itertools.count(1)


class Agent:
    """What an agent holds and sends: its keys and its report (with the facts roles render from)."""

    def __init__(self, name: str, interfaces: dict):
        self.name, self.interfaces = name, interfaces
        self.key = Ed25519PrivateKey.generate()
        self.box = box.X25519PrivateKey.generate()

    def message(self, generation: int = 0) -> dict:
        return trust.seal({"node": self.name, "seq": next(_sequence), "status": {"generation": generation},
                           "events": [], "facts": {"interfaces": self.interfaces},
                           "box_key": box.public_text(self.box.public_key())}, self.key)

    def fetch(self) -> dict:
        """A pull of its document: a request, not a report."""
        return trust.seal(messages.Request(node=self.name, seq=next(_sequence),
                                           box_key=box.public_text(self.box.public_key())).to_dict(), self.key)

    def opened(self, coordinator: Coordinator, sealed: dict) -> dict:
        """The document as the agent reads it: the coordinator's signature checked, decrypted with its key."""
        payload = trust.unseal(sealed, coordinator.channel.key.public_key())
        return box.decrypt(self.box, payload["encrypted"], f"{self.name}:{payload['generation']}".encode())


@pytest.fixture
def relay():
    relay = Relay()
    yield relay
    relay.close()


@pytest.fixture
def fleet(tmp_path, relay):
    """A coordinator with two accepted nodes carrying the role, rendered with uplink eth0 (generation 1)."""
    (tmp_path / "roles").mkdir()
    (tmp_path / "roles/tunnel.yaml.j2").write_text(ROLE)
    conf_file = tmp_path / "coordinator.conf"
    conf_file.write_text(f"[DEFAULT]\ntransport_url = {relay.url()}\ncontrol_exchange = converge-{uuid.uuid4().hex}\n"
                         f"rpc_response_timeout = 5\n[coordinator]\nstate_dir = {tmp_path / 'state'}\n"
                         f"roles_dir = {tmp_path / 'roles'}\nauto_accept = true\n")
    coordinator = Coordinator(config.make_conf([str(conf_file)], with_messaging=True))
    coordinator.set_up()
    agents = {name: Agent(name, interfaces) for name, interfaces in INTERFACES.items()}
    for agent in agents.values():
        assert coordinator.reports.report_state(agent.message()).status == "new"
    assert coordinator.settings.set_variable("uplink", "eth0") == []  # no node has roles yet
    assert coordinator.settings.set_variable("tag", "red") == []
    assert coordinator.settings.assign("n1", ["tunnel"]) == [("n1", 1)]
    assert coordinator.settings.assign("n2", ["tunnel"]) == [("n2", 1)]
    yield coordinator, agents
    coordinator.close()


def stored(coordinator: Coordinator) -> dict:
    """What the inventory holds: the site's variables, each node's generation and settings."""
    return {"variables": coordinator.inventory.variables(),
            "documents": {node.name: (node.desired_generation, settings(coordinator.inventory.document(node.name)))
                          for node in coordinator.inventory.nodes()}}


def settings(document) -> dict | None:
    """The role's settings in a document (a stored one, or one as the agent reads it)."""
    body = document if isinstance(document, dict) else document.body if document is not None else None
    return body["resources"][0]["settings"]["ovs"] if body else None


def test_a_render_failure_on_the_second_node_stores_and_pushes_nothing(fleet, relay):
    coordinator, _ = fleet
    before, events = stored(coordinator), coordinator.inventory.events(limit=1000)
    assert before["documents"]["n1"] == (1, {"local_ip": "198.18.0.1", "tag": "red"})
    relay.cut()  # a push tried now would fail (PushFailed): the error below shows that none was
    with pytest.raises(RoleError, match="n2.*eth1|eth1.*n2"):
        coordinator.settings.set_variable("uplink", "eth1")  # n1 renders (it has eth1), n2 cannot
    assert stored(coordinator) == before  # neither the variable nor n1's new document
    assert [e.id for e in coordinator.inventory.events(limit=1000)] == [e.id for e in events]  # nothing recorded
    with pytest.raises(RoleError, match="n2"):
        coordinator.settings.set_variable("uplink", "eth1", host="n2")
    assert stored(coordinator) == before


def test_a_node_that_cannot_take_its_document_fails_the_whole_change(fleet):
    coordinator, _ = fleet
    enrolment.revoke(coordinator.inventory, "n2")  # its roles stay; a document for it is refused
    before = stored(coordinator)
    with pytest.raises(ValueError, match="n2.*revoked"):
        coordinator.settings.set_variable("tag", "blue")  # n1's new document was valid: not stored either
    assert stored(coordinator) == before


def test_a_push_failure_after_the_commit_is_reported_and_the_agents_fetch_what_was_stored(fleet, relay):
    coordinator, agents = fleet
    relay.cut()  # the broker is out
    with pytest.raises(PushFailed) as failure:
        coordinator.settings.set_variable("tag", "blue")
    assert sorted(failure.value.stored) == [("n1", 2), ("n2", 2)] and set(failure.value.failed) == {"n1", "n2"}
    assert "not pushed to n1, n2" in str(failure.value)
    # stored all the same: the inventory is the truth, not the broker
    assert stored(coordinator) == {"variables": {"uplink": "eth0", "tag": "blue"}, "documents": {
        "n1": (2, {"local_ip": "198.18.0.1", "tag": "blue"}), "n2": (2, {"local_ip": "198.18.0.2", "tag": "blue"})}}
    assert {e.node for e in coordinator.inventory.events(kind="push.failed")} == {"n1", "n2"}
    # how each agent catches up: its next heartbeat's answer names a newer generation, so it fetches
    for agent in agents.values():
        assert coordinator.reports.report_state(agent.message(generation=1)).desired_generation == 2
        document = agent.opened(coordinator, coordinator.reports.fetch_state(agent.fetch()))
        assert document["generation"] == 2 and settings(document)["tag"] == "blue"
    relay.restore()  # the broker is back: pushes go through again
    assert coordinator.settings.set_variable("tag", "green") == [("n1", 3), ("n2", 3)]


def test_the_cli_names_the_nodes_a_push_missed(fleet, relay, tmp_path):
    coordinator, _ = fleet
    relay.cut()
    done = run_cli("--config-file", str(tmp_path / "coordinator.conf"), "var", "set", "tag", "blue",
                   program="nodeagentctl")
    assert done.returncode == 1
    assert done.stdout.splitlines() == ["n1: generation 2 stored, not pushed", "n2: generation 2 stored, not pushed"]
    assert len(done.stderr.strip().splitlines()) == 1 and "not pushed to n1, n2" in done.stderr
    assert "guest" not in done.stderr  # the broker's credentials are not shown
    assert coordinator.inventory.variables()["tag"] == "blue"


def report_new_facts(coordinator: Coordinator, agent: Agent, interfaces: dict) -> None:
    """The agent reports moved addresses; the serve loop renders again for it."""
    agent.interfaces = interfaces
    assert coordinator.reports.report_state(agent.message(generation=1)).status == "alive"
    coordinator.desired.render_for_new_facts(coordinator.reports.take_facts_changed())


def test_a_node_whose_new_facts_cannot_render_is_held_and_no_longer_blocks_the_fleet(fleet, relay):
    coordinator, agents = fleet
    relay.cut()  # pushes fail and are recorded; the agents would fetch: what matters here is what is stored
    # n2's address moves from eth0 to eth1 (as onto br-phy): its role (uplink eth0) cannot render any more
    report_new_facts(coordinator, agents["n2"], {"eth0": {"ipv4": []}, "eth1": {"ipv4": ["198.18.1.2/24"]}})
    node = coordinator.inventory.node("n2")
    assert node.state == "held" and "interface eth0 of node 'n2' has no IPv4 address" in node.held
    assert [e.detail for e in coordinator.inventory.events(node="n2", kind="node.held")] == [node.held]
    # another change to the site goes through for n1 and leaves n2 as it was (held, generation 1)
    with pytest.raises(PushFailed):
        coordinator.settings.set_variable("tag", "blue")
    assert stored(coordinator)["documents"] == {"n1": (2, {"local_ip": "198.18.0.1", "tag": "blue"}),
                                                "n2": (1, {"local_ip": "198.18.0.2", "tag": "red"})}
    # the repair (n2's uplink is now eth1) is accepted, releases n2 and stores its new document
    with pytest.raises(PushFailed):
        coordinator.settings.set_variable("uplink", "eth1", host="n2")
    assert stored(coordinator)["documents"]["n2"] == (2, {"local_ip": "198.18.1.2", "tag": "blue"})
    assert coordinator.inventory.node("n2").held is None
    assert [e.type for e in coordinator.inventory.events(node="n2", kind="node.*")][-2:] == ["node.held",
                                                                                           "node.released"]


def test_new_facts_that_make_the_fleet_disagree_hold_only_the_node_that_brings_the_disagreement(fleet, relay):
    coordinator, agents = fleet
    relay.cut()
    # n2 now has n1's address on eth0: both would be local_ip 198.18.0.1
    report_new_facts(coordinator, agents["n2"], {"eth0": {"ipv4": ["198.18.0.1/24"]}})
    held = coordinator.inventory.node("n2").held
    assert "overlay address 198.18.0.1 is local_ip of several nodes: n1, n2" in held
    assert coordinator.inventory.node("n1").held is None
    assert stored(coordinator)["documents"]["n2"] == (1, {"local_ip": "198.18.0.2", "tag": "red"})
    # n2's problem does not block a change to the site: n1 takes it, n2 stays held as it was
    with pytest.raises(PushFailed):
        coordinator.settings.set_variable("tag", "blue")
    assert stored(coordinator)["documents"] == {"n1": (2, {"local_ip": "198.18.0.1", "tag": "blue"}),
                                                "n2": (1, {"local_ip": "198.18.0.2", "tag": "red"})}
    assert coordinator.inventory.node("n2").state == "held"
    # the address is back: n2 is released and takes the site's change
    report_new_facts(coordinator, agents["n2"], INTERFACES["n2"])  # a failed push there is logged, not raised
    assert coordinator.inventory.node("n2").held is None
    assert stored(coordinator)["documents"]["n2"] == (2, {"local_ip": "198.18.0.2", "tag": "blue"})


def test_an_operator_change_that_makes_nodes_disagree_is_refused_whole(fleet):
    coordinator, agents = fleet
    # n2 gains n1's eth1 address on its own eth1: harmless while the uplink is eth0
    report_new_facts(coordinator, agents["n2"], {**INTERFACES["n2"], "eth1": {"ipv4": ["198.18.1.1/24"]}})
    before = stored(coordinator)
    with pytest.raises(FleetInconsistent, match="overlay address 198.18.1.1 is local_ip of several nodes: n1, n2"):
        coordinator.settings.set_variable("uplink", "eth1")
    assert stored(coordinator) == before
    assert {node.held for node in coordinator.inventory.nodes()} == {None}
