"""A coordinator and agents as separate processes over the real RabbitMQ, on lab nodes.

The tests share one fleet (starting it takes a while): node-a and node-b, accepted and converged on the
network node's document by the fixture. Each test reads the generations it starts from and restores what it
breaks, so any test runs alone and in any order; enrolment is shown on nodes of each test's own.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
import yaml

from nodeagent.cli import config

from nodeagent.wire import rpc as messaging, trust
from nodeagent.testing.lab import Fleet
from nodeagent.testing.waiting import wait_until
from tests.conftest import EXAMPLES
from tests.relay import Relay

# The first test to run also starts the shared fleet (a minute or two on a loaded machine).
pytestmark = pytest.mark.timeout(600)

DOCUMENT = {k: v for k, v in yaml.safe_load((EXAMPLES / "network-node.yaml").read_text()).items() if k != "node"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    relay = Relay()  # the broker outages cut this fleet's relay, never the shared RabbitMQ
    fleet = Fleet(tmp_path_factory.mktemp("fleet"), transport_url=relay.url(), report_interval=1)
    fleet.relay = relay
    try:
        for name in ("node-a", "node-b"):
            fleet.add_node(name, ["eth2"])
        state_file = fleet.directory / "network.yaml"
        state_file.write_text(yaml.safe_dump(DOCUMENT))
        fleet.start("coordinator")
        for name in ("node-a", "node-b"):
            fleet.start(name)
        wait_until(lambda: {"node-a", "node-b"} <= set(nodes(fleet)), timeout=60)
        for name in ("node-a", "node-b"):
            fleet.ctl("node", "accept", name)
            fleet.ctl("node", "set-state", name, str(state_file))
        wait_until(lambda: all(converged(fleet, n) for n in ("node-a", "node-b")), timeout=60)
        yield fleet
    finally:
        relay.close()
        fleet.close()


def nodes(fleet) -> dict[str, dict]:
    return {row["Host"]: row for row in json.loads(fleet.ctl("node", "list", "-f", "json").stdout)}


def events(fleet, *args) -> list[dict]:
    return json.loads(fleet.ctl("events", "-f", "json", *args).stdout)


def generation(fleet, name) -> int:
    """The generation the coordinator holds for ``name`` (the right half of "observed/desired")."""
    return int(nodes(fleet)[name]["Generation"].split("/")[1])


def converged(fleet, name, generation: int | None = None) -> bool:
    row = nodes(fleet).get(name, {})
    observed, _, desired = row.get("Generation", "/").partition("/")
    return (row.get("State") == "converged" and row.get("Alive") == ":-)" and observed == desired
            and (generation is None or desired == str(generation)))


def pending_answers(fleet, name) -> int:
    """How many of its reports the agent has had answered "pending" (it logs each)."""
    log = fleet.directory / f"{name}.log"
    return log.read_text().count("waiting for the operator to accept this node") if log.exists() else 0


def new_node(fleet, prefix: str) -> str:
    """A node of the calling test's own, its agent started and not yet accepted."""
    name = f"{prefix}-{len(fleet.nodes)}"
    fleet.add_node(name, ["eth2"])
    fleet.start(name)
    wait_until(lambda: name in nodes(fleet), timeout=60)
    return name


def test_new_agents_wait_for_acceptance_then_converge_on_a_push(fleet):
    name = new_node(fleet, "node-new")
    assert nodes(fleet)[name]["State"] == "pending"
    assert [e["Type"] for e in events(fleet, "--node", name, "--type", "node.pending")] == ["node.pending"]
    fleet.ctl("node", "accept", name)
    out = fleet.ctl("node", "set-state", name, str(fleet.directory / "network.yaml")).stdout
    assert out.strip() == f"{name}: generation 1 pushed"
    wait_until(lambda: converged(fleet, name, 1))
    conf = (fleet.directory / name / "root/etc/neutron/neutron.conf").read_text()
    assert "core_plugin = ml2" in conf
    assert fleet.nodes[name].vsctl("list-ports", "br-ex").stdout.split() == ["eth2"]
    show = yaml.safe_load(fleet.ctl("node", "show", name, "-f", "yaml").stdout)
    assert show["status"]["counts"]["failed"] == 0 and show["observed_generation"] == 1
    assert show["kernel"] and "eth2" in fleet.ctl("node", "show", name, "-f", "json").stdout
    assert any(e["Type"] == "apply.succeeded" for e in events(fleet, "--node", name))
    fleet.stop(name)


def test_node_plan_shows_the_agents_diff(fleet):
    wait_until(lambda: converged(fleet, "node-a"))
    start = generation(fleet, "node-a")
    rows = json.loads(fleet.ctl("node", "plan", "node-a", "-f", "json").stdout)
    assert {row["Status"] for row in rows} == {"in_sync"}
    # ml2-conf only monitored from now on, so the agent leaves a hand edit for the plan to show
    monitored = {**DOCUMENT, "resources": [{**r, "mode": "monitor"} if r["id"] == "ml2-conf" else r
                                           for r in DOCUMENT["resources"]]}
    (fleet.directory / "monitored.yaml").write_text(yaml.safe_dump(monitored))
    fleet.ctl("node", "set-state", "node-a", str(fleet.directory / "monitored.yaml"))
    wait_until(lambda: converged(fleet, "node-a", start + 1))
    ml2 = fleet.directory / "node-a/root/etc/neutron/plugins/ml2/ml2_conf.ini"
    ml2.write_text(ml2.read_text().replace("type_drivers = gre", "type_drivers = vlan"))
    rows = json.loads(fleet.ctl("node", "plan", "node-a", "-f", "json").stdout)
    pending = [row for row in rows if row["Status"] != "in_sync"]
    assert [(row["Resource"], row["Details"]) for row in pending] == [("ml2-conf", ["ml2.type_drivers: vlan → gre"])]
    assert "type_drivers = vlan" in ml2.read_text()  # neither the plan nor the monitoring agent changed it
    ml2.write_text(ml2.read_text().replace("type_drivers = vlan", "type_drivers = gre"))


@pytest.fixture
def transport(fleet):
    """An RPC transport through the fleet's relay, as anyone on the broker holds; closed after the test (left
    open, it would go on reconnecting to the relay once the module closed it)."""
    made = messaging.rpc_transport(config.make_conf([str(fleet.coordinator_conf)], with_messaging=True))
    yield made
    made.cleanup()


def _sealed(fleet, key, node, generation):
    body = {**DOCUMENT, "node": node, "generation": generation}
    body["resources"] = [{"id": "evil", "driver": "file", "path": "/etc/neutron/evil.conf", "content": "x\n"}]
    return trust.seal({"kind": "document", "document": body, "issued_at": time.time()}, key)


def test_forged_stale_and_foreign_documents_are_refused_and_shown(fleet, transport):
    coordinator_key = trust.load_private_key(fleet.directory / "coordinator/coordinator.key")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    client = messaging.AgentAPI(transport)
    wait_until(lambda: converged(fleet, "node-a"))
    held = generation(fleet, "node-a")
    forged = _sealed(fleet, Ed25519PrivateKey.generate(), "node-a", 99)
    unsigned = {**forged, "signature": ""}
    stale = _sealed(fleet, coordinator_key, "node-a", 0)
    foreign = _sealed(fleet, coordinator_key, "node-b", 99)

    def refused():
        return [e["Detail"] for e in events(fleet, "--node", "node-a", "--type", "state.refused")]
    before = len(refused())
    for sealed in (forged, unsigned, stale, foreign):
        client.apply_state("node-a", sealed)
    details = wait_until(lambda: len(refused()) >= before + 4 and refused())
    assert any("bad signature" in d for d in details)
    assert any("unsigned" in d for d in details)
    assert any(f"stale: generation 0 is older than the generation {held} held" in d for d in details)
    assert any("meant for node 'node-b', this is 'node-a'" in d for d in details)
    assert not (fleet.directory / "node-a/root/etc/neutron/evil.conf").exists()
    assert generation(fleet, "node-a") == held


def test_reports_not_signed_by_the_nodes_key_are_refused(fleet, transport):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    held = nodes(fleet)["node-b"]["Generation"]
    impostor = trust.seal({"node": "node-b", "status": {"generation": 42}, "events": []},
                          Ed25519PrivateKey.generate())
    reply = messaging.CoordinatorAPI(transport).report_state(impostor)
    # a request that does not verify gets an unsigned rejection: nothing its sender could pass on as signed
    assert reply == {"kind": "rejection", "reason": "signed with a key other than the node's accepted key"}
    assert nodes(fleet)["node-b"]["Generation"] == held
    assert any(e["Type"] == "report.refused" for e in events(fleet, "--node", "node-b"))


def test_an_unaccepted_node_gets_nothing(fleet):
    name = new_node(fleet, "node-c")
    # Proof that its reports were looked at and refused, not merely not seen yet: the agent logs each answer.
    answered = wait_until(lambda: pending_answers(fleet, name) >= 2 and pending_answers(fleet, name))
    row = nodes(fleet)[name]
    assert (row["State"], row["Alive"], row["Last heartbeat"]) == ("pending", "XXX", "never")
    done = fleet.ctl("node", "set-state", name, str(fleet.directory / "network.yaml"), "--no-push")
    assert done.returncode == 0
    # Two reports answered since it has a document: an accepted node would have fetched it on the first.
    wait_until(lambda: pending_answers(fleet, name) >= answered + 2)
    assert not (fleet.directory / name / "root/etc/neutron").exists()
    assert nodes(fleet)[name]["Last heartbeat"] == "never"
    fleet.stop(name)


def test_agents_reconnect_and_converge_after_a_broker_restart(fleet):
    fleet.relay.cut()
    try:
        time.sleep(2)
    finally:
        fleet.relay.restore()
    changed = {**DOCUMENT, "resources": DOCUMENT["resources"] + [
        {"id": "extra", "driver": "file", "path": "/etc/neutron/after-restart.conf", "content": "ok\n"}]}
    state = fleet.directory / "changed.yaml"
    state.write_text(yaml.safe_dump(changed))
    start = generation(fleet, "node-a")
    fleet.ctl("node", "set-state", "node-a", str(state), "--no-push")
    wait_until(lambda: converged(fleet, "node-a", start + 1), timeout=60)
    assert (fleet.directory / "node-a/root/etc/neutron/after-restart.conf").read_text() == "ok\n"


def test_agent_restarted_without_broker_enforces_its_cached_document(fleet):
    wait_until(lambda: converged(fleet, "node-b"), timeout=60)  # a document cached to enforce
    assert fleet.stop("node-b") == 0  # SIGTERM: a clean stop
    fleet.relay.cut()
    try:
        conf = fleet.directory / "node-b/root/etc/neutron/neutron.conf"
        conf.write_text(conf.read_text().replace("core_plugin = ml2", "core_plugin = drifted"))
        fleet.start("node-b")
        wait_until(lambda: "core_plugin = ml2" in conf.read_text(), timeout=30)
    finally:
        fleet.relay.restore()
    wait_until(lambda: nodes(fleet)["node-b"]["Alive"] == ":-)", timeout=60)


def test_a_killed_agent_is_shown_down_then_up_again(fleet):
    wait_until(lambda: nodes(fleet)["node-b"]["Alive"] == ":-)", timeout=60)
    fleet.stop("node-b", signal.SIGKILL)
    wait_until(lambda: nodes(fleet)["node-b"]["Alive"] == "XXX", timeout=10)
    assert any(e["Type"] == "node.down" for e in events(fleet, "--node", "node-b"))
    fleet.start("node-b")
    wait_until(lambda: nodes(fleet)["node-b"]["Alive"] == ":-)", timeout=30)
    assert events(fleet, "--node", "node-b")[-1]["Type"] in ("node.up", "apply.succeeded")
