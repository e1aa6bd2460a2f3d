"""A coordinator and agents as separate processes over the real RabbitMQ, on lab nodes.

The tests run in file order on one fleet: push, plan, refusals, enrolment, broker
restart, offline restart, a killed agent.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
import yaml

from nodeagent.kit import config

from nodeagent.wire import rpc as messaging, trust
from nodeagent.testing.lab import Fleet
from nodeagent.testing.waiting import wait_until
from tests.conftest import EXAMPLES
from tests.relay import Relay

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
        yield fleet
    finally:
        relay.close()
        fleet.close()


def nodes(fleet) -> dict[str, dict]:
    return {row["Host"]: row for row in json.loads(fleet.ctl("node", "list", "-f", "json").stdout)}


def events(fleet, *args) -> list[dict]:
    return json.loads(fleet.ctl("events", "-f", "json", *args).stdout)


def test_new_agents_wait_for_acceptance_then_converge_on_a_push(fleet):
    wait_until(lambda: {"node-a", "node-b"} <= set(nodes(fleet)))
    assert {row["State"] for row in nodes(fleet).values()} == {"pending"}
    assert {e["Type"] for e in events(fleet, "--type", "node.pending")} == {"node.pending"}
    for name in ("node-a", "node-b"):
        fleet.ctl("node", "accept", name)
        out = fleet.ctl("node", "set-state", name, str(fleet.directory / "network.yaml")).stdout
        assert out.strip() == f"{name}: generation 1 pushed"

    def converged():
        rows = nodes(fleet)
        return all(rows[n]["Generation"] == "1/1" and rows[n]["Alive"] == ":-)" and rows[n]["State"] == "converged"
                   for n in ("node-a", "node-b"))
    wait_until(converged)
    for name in ("node-a", "node-b"):
        conf = (fleet.directory / name / "root/etc/neutron/neutron.conf").read_text()
        assert "core_plugin = ml2" in conf
        assert fleet.nodes[name].vsctl("list-ports", "br-ex").stdout.split() == ["eth2"]
    show = yaml.safe_load(fleet.ctl("node", "show", "node-a", "-f", "yaml").stdout)
    assert show["status"]["counts"]["failed"] == 0 and show["observed_generation"] == 1
    assert show["kernel"] and "eth2" in fleet.ctl("node", "show", "node-a", "-f", "json").stdout
    assert any(e["Type"] == "apply.succeeded" for e in events(fleet, "--node", "node-a"))


def test_node_plan_shows_the_agents_diff(fleet):
    rows = json.loads(fleet.ctl("node", "plan", "node-a", "-f", "json").stdout)
    assert {row["Status"] for row in rows} == {"in_sync"}
    # ml2-conf only monitored from now on, so the agent leaves a hand edit for the plan to show
    monitored = {**DOCUMENT, "resources": [{**r, "mode": "monitor"} if r["id"] == "ml2-conf" else r
                                           for r in DOCUMENT["resources"]]}
    (fleet.directory / "monitored.yaml").write_text(yaml.safe_dump(monitored))
    fleet.ctl("node", "set-state", "node-a", str(fleet.directory / "monitored.yaml"))
    wait_until(lambda: nodes(fleet)["node-a"]["Generation"] == "2/2")
    ml2 = fleet.directory / "node-a/root/etc/neutron/plugins/ml2/ml2_conf.ini"
    ml2.write_text(ml2.read_text().replace("type_drivers = gre", "type_drivers = vlan"))
    rows = json.loads(fleet.ctl("node", "plan", "node-a", "-f", "json").stdout)
    pending = [row for row in rows if row["Status"] != "in_sync"]
    assert [(row["Resource"], row["Details"]) for row in pending] == [("ml2-conf", ["ml2.type_drivers: vlan → gre"])]
    assert "type_drivers = vlan" in ml2.read_text()  # neither the plan nor the monitoring agent changed it
    ml2.write_text(ml2.read_text().replace("type_drivers = vlan", "type_drivers = gre"))


def _client(fleet):
    conf = config.make_conf([str(fleet.coordinator_conf)], with_messaging=True)
    return messaging.AgentClient(messaging.rpc_transport(conf))


def _sealed(fleet, key, node, generation):
    body = {**DOCUMENT, "node": node, "generation": generation}
    body["resources"] = [{"id": "evil", "driver": "file", "path": "/etc/neutron/evil.conf", "content": "x\n"}]
    return trust.seal({"kind": "document", "document": body, "issued_at": time.time()}, key)


def test_forged_stale_and_foreign_documents_are_refused_and_shown(fleet):
    coordinator_key = trust.load_private_key(fleet.directory / "coordinator/coordinator.key")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    client = _client(fleet)
    forged = _sealed(fleet, Ed25519PrivateKey.generate(), "node-a", 99)
    unsigned = {**forged, "signature": ""}
    stale = _sealed(fleet, coordinator_key, "node-a", 0)
    foreign = _sealed(fleet, coordinator_key, "node-b", 99)
    for sealed in (forged, unsigned, stale, foreign):
        client.apply_state("node-a", sealed)

    def refused():
        return [e["Detail"] for e in events(fleet, "--node", "node-a", "--type", "state.refused")]
    details = wait_until(lambda: len(refused()) >= 4 and refused())
    assert any("bad signature" in d for d in details)
    assert any("unsigned" in d for d in details)
    assert any("stale: generation 0 is older than the generation 2 held" in d for d in details)
    assert any("meant for node 'node-b', this is 'node-a'" in d for d in details)
    assert not (fleet.directory / "node-a/root/etc/neutron/evil.conf").exists()
    assert nodes(fleet)["node-a"]["Generation"] == "2/2"


def test_reports_not_signed_by_the_nodes_key_are_refused(fleet):
    conf = config.make_conf([str(fleet.coordinator_conf)], with_messaging=True)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    impostor = trust.seal({"node": "node-b", "status": {"generation": 42}, "events": []},
                          Ed25519PrivateKey.generate())
    reply = messaging.CoordinatorClient(messaging.rpc_transport(conf)).report_state(impostor)
    answer = trust.unseal(reply, trust.load_public_key(fleet.public_key))["answer"]  # replies are signed
    assert answer == {"status": "refused", "reason": "signed with a key other than the node's accepted key"}
    assert nodes(fleet)["node-b"]["Generation"] == "1/1"
    assert any(e["Type"] == "report.refused" for e in events(fleet, "--node", "node-b"))


def test_an_unaccepted_node_gets_nothing(fleet):
    fleet.add_node("node-c", ["eth2"])
    fleet.start("node-c")
    wait_until(lambda: "node-c" in nodes(fleet))
    time.sleep(2)
    row = nodes(fleet)["node-c"]
    assert (row["State"], row["Alive"], row["Last heartbeat"]) == ("pending", "XXX", "never")
    done = fleet.ctl("node", "set-state", "node-c", str(fleet.directory / "network.yaml"), "--no-push")
    assert done.returncode == 0
    time.sleep(2)
    assert not (fleet.directory / "node-c/root/etc/neutron").exists()
    fleet.stop("node-c")


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
    fleet.ctl("node", "set-state", "node-a", str(state), "--no-push")
    wait_until(lambda: nodes(fleet)["node-a"]["Generation"] == "3/3", timeout=60)
    assert (fleet.directory / "node-a/root/etc/neutron/after-restart.conf").read_text() == "ok\n"


def test_agent_restarted_without_broker_enforces_its_cached_document(fleet):
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
    fleet.stop("node-b", signal.SIGKILL)
    wait_until(lambda: nodes(fleet)["node-b"]["Alive"] == "XXX", timeout=10)
    assert any(e["Type"] == "node.down" for e in events(fleet, "--node", "node-b"))
    fleet.start("node-b")
    wait_until(lambda: nodes(fleet)["node-b"]["Alive"] == ":-)", timeout=30)
    assert events(fleet, "--node", "node-b")[-1]["Type"] in ("node.up", "apply.succeeded")
