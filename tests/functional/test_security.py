"""The hostile tester's suite, against real processes on the real RabbitMQ: what a holder of the broker
password sees and can do.

* a consumer bound to the fleet's control exchange, and every output of an end-to-end run (logs, CLI,
  events, drift, webhook bodies, notifications, the coordinator's database), show no secret, old or current;
* forged, replayed, spoofed-reply, foreign-fleet and unenrolled messages are refused and recorded, a flood
  of them in a couple of events;
* two fleets on one vhost never meet.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import kombu
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodeagent.cli import config

from nodeagent.wire import rpc as messaging, trust
from nodeagent.testing.webhook import Webhook
from nodeagent.testing.lab import Fleet
from tests.conftest import run_cli
from tests.sniffer import BROKER, Sniffer
from nodeagent.testing.waiting import wait_until

OLD, NEW = "0ld-Rabbit-S3cret-7731", "n3w-Rabbit-S3cret-9902"


def document(secret: str, extra: str = "one") -> dict:
    return {"resources": [
        {"id": "neutron-conf", "driver": "ini", "path": "/etc/neutron/neutron.conf",
         "settings": {"DEFAULT": {"core_plugin": "ml2", "transport_url": f"rabbit://openstack:{secret}@controller"},
                      "database": {"connection": f"mysql+pymysql://neutron:{secret}@controller/neutron"}},
         "sensitive": ["DEFAULT.transport_url", "database"]},
        {"id": "marker", "driver": "file", "path": "/etc/neutron/marker.conf", "content": f"{extra}\n"},
    ]}


@pytest.fixture
def hooks():
    with Webhook() as hook:
        yield hook


def start_fleet(directory, name="sec1", **options) -> Fleet:
    fleet = Fleet(directory, report_interval=1, auto_accept=True, **options)
    fleet.add_node(name, [])
    fleet.start("coordinator")
    fleet.start(name)
    wait_until(lambda: name in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout, timeout=60)
    return fleet


def converged(fleet: Fleet, name: str, generation: int) -> bool:
    return f"converged {generation}/{generation}" in " ".join(
        fleet.ctl("node", "list", "-f", "value", "-c", "Host", "-c", "State", "-c", "Generation").stdout.split())


def set_state(fleet: Fleet, name: str, body: dict, generation: int) -> str:
    path = fleet.directory / f"state-{generation}.yaml"
    path.write_text(yaml.safe_dump(body))
    out = fleet.ctl("node", "set-state", name, str(path)).stdout
    wait_until(lambda: converged(fleet, name, generation), timeout=30)
    return out


def events(fleet: Fleet, *args: str) -> list[dict]:
    return json.loads(fleet.ctl("events", "-f", "json", "--limit", "10000", *args).stdout)


def test_no_secret_on_the_bus_or_in_any_output_old_or_current(tmp_path, hooks):
    exchange = f"nodeagent-sec-{uuid.uuid4().hex[:8]}"
    sniffer = Sniffer(exchange)
    url = hooks.url
    fleet = start_fleet(tmp_path, exchange=exchange, coordinator_options={"webhooks": url})
    outputs: list[str] = []
    try:
        outputs.append(fleet.ctl("secret", "set", "RABBIT_PASS", stdin=OLD + "\n").stdout)
        outputs.append(set_state(fleet, "sec1", document(OLD), 1))
        conf = fleet.directory / "sec1/root/etc/neutron/neutron.conf"
        assert OLD in conf.read_text()  # the node itself has it, in its file
        # drift on the secret and beside it: events, webhooks, notifications
        conf.write_text(conf.read_text().replace(OLD, "tampered").replace("core_plugin = ml2", "core_plugin = x"))
        wait_until(lambda: OLD in conf.read_text() and "core_plugin = ml2" in conf.read_text(), timeout=10)
        wait_until(lambda: json.loads(fleet.ctl("drift", "list", "-f", "json").stdout), timeout=20)
        wait_until(lambda: hooks.bodies, timeout=20)
        for fmt in ("table", "json", "yaml", "value"):
            outputs.append(fleet.ctl("node", "plan", "sec1", "-f", fmt).stdout)
        outputs.append(fleet.ctl("secret", "set", "RABBIT_PASS", stdin=NEW + "\n").stdout)
        outputs.append(set_state(fleet, "sec1", document(NEW, "two"), 2))  # the old secret becomes an old value
        assert NEW in conf.read_text() and OLD not in conf.read_text()
        for args in (("events",), ("drift", "list"), ("node", "list"), ("node", "show", "sec1"), ("secret", "list"),
                     ("var", "list")):
            for fmt in ("table", "json"):
                done = fleet.ctl(*args, "-f", fmt)
                outputs += [done.stdout, done.stderr]
        status = run_cli("--config-file", str(fleet.agent_conf("sec1")), "status", "-f", "json")
        outputs += [status.stdout, status.stderr]
    finally:
        fleet.close()
        sniffer.close()
    assert len(sniffer.bodies) > 5, "the sniffer should have seen pushes, reports and notifications"
    assert any("nodeagent.drift" in body for body in sniffer.bodies)
    logs = [path.read_text(errors="replace") for path in tmp_path.glob("*.log")]
    stored = [path.read_bytes().decode("latin-1") for path in (tmp_path / "coordinator").glob("coordinator.db*")]
    state = [path.read_text() for path in (tmp_path / "sec1/state").rglob("*.json")]
    places = {"bus": sniffer.bodies, "webhooks": hooks.bodies, "cli": outputs, "logs": logs, "database": stored,
              "agent state": state}
    for where, texts in places.items():
        for secret in (OLD, NEW):
            assert not [text for text in texts if secret in text], f"{secret} found in {where}"


def test_two_fleets_on_one_vhost_never_meet(tmp_path):
    first = start_fleet(tmp_path / "first", name="twin")
    second = start_fleet(tmp_path / "second", name="twin")
    try:
        set_state(first, "twin", document(OLD, "first"), 1)
        set_state(second, "twin", document(NEW, "second"), 1)
        for fleet, marker in ((first, "first"), (second, "second")):
            assert (fleet.directory / "twin/root/etc/neutron/marker.conf").read_text() == f"{marker}\n"
            own_key = (fleet.directory / "twin/state/node.pub").read_text().strip()
            shown = json.loads(fleet.ctl("node", "show", "twin", "-f", "json").stdout)
            assert shown["public_key"] == own_key
            assert not [e for e in events(fleet) if e["Type"].endswith(".refused")]
    finally:
        first.close()
        second.close()


class Rogue:
    """A consumer on the coordinator's topic that answers every report 'alive', unsigned."""

    target = messaging.Target(version=messaging.COORDINATOR_API_VERSION)

    def __init__(self):
        self.answered = 0

    @messaging.expose
    def report_state(self, context, sealed):
        self.answered += 1
        return {"status": "alive", "desired_generation": 0}

    @messaging.expose
    def fetch_state(self, context, sealed):
        return None


def test_a_spoofed_reply_does_not_make_the_agent_drop_its_spool(tmp_path):
    fleet = start_fleet(tmp_path)
    conf = config.make_conf([str(fleet.coordinator_conf)], with_messaging=True)
    rogue, server = Rogue(), None
    try:
        set_state(fleet, "sec1", document(OLD), 1)
        fleet.stop("coordinator")  # only the rogue answers now
        server = messaging.rpc_server(messaging.rpc_transport(conf), messaging.Target(
            topic=messaging.topic(conf, messaging.COORDINATOR_TOPIC), server="rogue"), [rogue])
        server.start()
        marker = fleet.directory / "sec1/root/etc/neutron/marker.conf"
        marker.write_text("edited\n")
        wait_until(lambda: marker.read_text() == "one\n", timeout=10)
        wait_until(lambda: rogue.answered >= 3, timeout=20)
        spool = fleet.directory / "sec1/state/spool"
        kept = [json.loads(p.read_text()) for p in spool.glob("*.json")]
        assert [e["type"] for e in kept if e["type"].startswith("drift")] == ["drift.corrected"]
        assert any(e["type"] == "state.refused" and "answer to report_state" in e["detail"] for e in kept)
        server.stop()
        server.wait()
        server = None
        fleet.start("coordinator")
        wait_until(lambda: not list(spool.glob("*.json")), timeout=30)
        drift = json.loads(fleet.ctl("drift", "list", "-f", "json").stdout)
        assert [(d["Resource"], d["State"]) for d in drift] == [("marker", "corrected")]
        assert [e for e in events(fleet, "--type", "state.refused") if "answer to report_state" in e["Detail"]]
    finally:
        if server is not None:
            server.stop()
            server.wait()
        fleet.close()


def test_forged_replayed_foreign_and_unenrolled_messages_are_refused_and_recorded_in_few_events(tmp_path):
    exchange = f"nodeagent-sec-{uuid.uuid4().hex[:8]}"
    sniffer = Sniffer(exchange)
    fleet = start_fleet(tmp_path, exchange=exchange)
    conf = config.make_conf([str(fleet.coordinator_conf)], with_messaging=True)
    transport = messaging.rpc_transport(conf)
    try:
        set_state(fleet, "sec1", document(OLD), 1)
        # forged pushes: 1,000 of them, signed by keys that are not the coordinator's
        agents = messaging.AgentAPI(transport)
        forger = Ed25519PrivateKey.generate()
        for number in range(1000):
            agents.apply_state("sec1", trust.seal({"kind": "document", "document": {
                "node": "sec1", "generation": 100 + number, "resources": []}}, forger))
        # a foreign fleet's coordinator signs a document for this node
        foreign = Ed25519PrivateKey.generate()
        agents.apply_state("sec1", trust.seal({"kind": "document", "document": {
            "node": "sec1", "generation": 5000, "resources": []}}, foreign))
        set_state(fleet, "sec1", document(OLD, "two"), 2)  # queued behind the forgeries: all seen by now
        # a sniffed report, published again with a new message id (oslo.messaging drops a verbatim copy,
        # but only while the same coordinator process runs)
        reports = [json.loads(b) for b in sniffer.bodies if "report_state" in b]
        assert reports
        envelope = reports[-1]
        inner = json.loads(envelope["oslo.message"])
        inner["_unique_id"] = uuid.uuid4().hex
        inner["_msg_id"] = uuid.uuid4().hex
        envelope["oslo.message"] = json.dumps(inner)
        with kombu.Connection(BROKER) as connection:
            producer = connection.Producer(exchange=kombu.Exchange(exchange, type="topic", durable=False))
            producer.publish(json.dumps(envelope), routing_key=messaging.topic(conf, messaging.COORDINATOR_TOPIC),
                             content_type="application/json", content_encoding="utf-8")
        # an unenrolled node asks for documents
        stranger = Ed25519PrivateKey.generate()
        coordinator = messaging.CoordinatorAPI(transport)
        reply = coordinator.fetch_state(trust.seal({"node": "stranger", "seq": 1}, stranger))
        assert reply == {"kind": "rejection", "reason": "unknown node"}  # unsigned

        def refused() -> dict[str, list[str]]:
            found: dict[str, list[str]] = {}
            for event in events(fleet):
                if event["Type"].endswith(".refused"):
                    found.setdefault(event["Type"], []).append(event["Detail"])
            return found
        seen = wait_until(lambda: len(refused()) == 3 and any("replayed" in d for d in refused()["report.refused"])
                          and refused(), timeout=30)
        pushes = seen["state.refused"]
        # 1,001 refusals, one event per window: one, or two when a loaded machine took the flood past a window
        assert len(pushes) in (1, 2) and "bad signature" in pushes[0]
        assert seen["fetch.refused"] == ["unknown node"]
        assert any(d.startswith("replayed: sequence") for d in seen["report.refused"])
        assert (fleet.directory / "sec1/root/etc/neutron/marker.conf").read_text() == "two\n"
    finally:
        fleet.close()
        sniffer.close()


def test_an_agent_with_its_own_broker_user_works_and_can_neither_sniff_nor_take_others_queues(tmp_path):
    exchange = f"nodeagent-sec-{uuid.uuid4().hex[:8]}"
    fleet = Fleet(tmp_path, report_interval=1, auto_accept=True, exchange=exchange)
    try:
        fleet.add_node("sec1", [])
        user = fleet.use_own_broker_user("sec1")
        url = next(line for line in fleet.agent_conf("sec1").read_text().splitlines() if "transport_url" in line)
        password = url.split(":")[2].split("@")[0]
        assert f"rabbit://{user}:" in url and "guest" not in url
        fleet.start("coordinator")
        fleet.start("sec1")
        wait_until(lambda: "sec1" in fleet.ctl("node", "list", "-f", "value", "-c", "Host").stdout, timeout=30)
        set_state(fleet, "sec1", document(OLD), 1)  # pushes, reports and pulls all work with the limited user
        marker = fleet.directory / "sec1/root/etc/neutron/marker.conf"
        marker.write_text("edited\n")
        wait_until(lambda: json.loads(fleet.ctl("drift", "list", "-f", "json").stdout), timeout=20)
        topic = kombu.Exchange(exchange, type="topic", durable=False, auto_delete=False)
        attempts = {
            "bind # on the control exchange": kombu.Queue(f"sniff-{uuid.uuid4().hex}", exchange=topic,
                                                          routing_key="#", auto_delete=True),
            "bind another node's key": kombu.Queue(f"{exchange}.nodeagent.other", exchange=topic,
                                                   routing_key=f"{exchange}.nodeagent.other", auto_delete=True),
            "consume the coordinator's queue": kombu.Queue(f"{exchange}.nodeagent-coordinator", exchange=topic,
                                                           routing_key=f"{exchange}.nodeagent-coordinator"),
        }
        for what, queue in attempts.items():
            with kombu.Connection(f"amqp://{user}:{password}@127.0.0.1:5672//") as connection:
                with pytest.raises(Exception, match="ACCESS_REFUSED|access to|not authorised|403"):
                    queue(connection.channel()).declare()
    finally:
        fleet.close()
    assert user not in subprocess.run(["rabbitmqctl", "-q", "list_users"], capture_output=True, text=True).stdout
