"""No downgrade, against a real agent and coordinator on the real RabbitMQ (issue #23, item 3): documents signed
by the coordinator's very key, pushed as a broker user who captured or holds one could, are refused when they are
in clear for a node that has an encryption key, when they reuse the generation held with other content, or when
they are older than ``document_max_age``."""

from __future__ import annotations

import time

from nodeagent.cli import config
from nodeagent.testing.waiting import wait_until
from nodeagent.wire import box, rpc as messaging
from nodeagent.wire.protocol import CoordinatorChannel
from tests.functional.test_security import document, events, set_state, start_fleet

MAX_AGE = 6


def test_plaintext_same_generation_and_old_documents_are_refused(tmp_path):
    fleet = start_fleet(tmp_path, "dg1", agent_options={"document_max_age": MAX_AGE})
    conf = config.make_conf([str(fleet.coordinator_conf)], with_messaging=True)
    transport = messaging.rpc_transport(conf)
    try:
        set_state(fleet, "dg1", document("x", "one"), 1)
        marker = tmp_path / "dg1/root/etc/neutron/marker.conf"
        coordinator = CoordinatorChannel(tmp_path / "coordinator/coordinator.key", FileNotFoundError)
        box_key = box.public_text(box.load_or_create_key(tmp_path / "dg1/state/node.box").public_key())
        captured = coordinator.seal_document("dg1", {**document("x", "old"), "generation": 2}, box_key)
        agents = messaging.AgentAPI(transport)
        agents.apply_state("dg1", coordinator.seal_clear_document({**document("x", "clear"), "node": "dg1",
                                                                   "generation": 5}))
        agents.apply_state("dg1", coordinator.seal_document("dg1", {**document("x", "same"), "generation": 1},
                                                            box_key))
        time.sleep(MAX_AGE + 1)
        agents.apply_state("dg1", captured)  # a push captured a while ago, replayed now

        def refused() -> str:
            return " ".join(e["Detail"] for e in events(fleet, "--type", "state.refused"))
        wait_until(lambda: "too old" in refused(), timeout=30)
        details = refused()
        assert "document from a push: in clear, and this node has an encryption key" in details
        assert "document from a push: another document with the generation 1 held" in details
        assert "document from a push: too old: issued" in details and f"document_max_age is {MAX_AGE} s" in details
        assert marker.read_text() == "one\n"
        set_state(fleet, "dg1", document("x", "two"), 2)  # a fresh push of the coordinator's is taken
        assert marker.read_text() == "two\n"
    finally:
        transport.cleanup()
        fleet.close()
