"""The coordinators' heartbeat listener over the real RabbitMQ, its polls paced (``wire.rpc.PacedPolls``):
heartbeats trickling in one by one are all taken, in batches the pacing lets gather, none held much longer than
its rest; heartbeats that queued are taken without rests; a burst is taken at once, the rest shrinking when
whole batches wait."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from nodeagent.cli import config
from nodeagent.testing.coordinators import TRANSPORT_URL
from nodeagent.testing.waiting import wait_until
from nodeagent.wire import rpc


class Intake:
    """What the listener hands each batch to (a coordinator's ``Reports``): records when each heartbeat came."""

    def __init__(self):
        self.batches: list[int] = []
        self.delays: list[float] = []
        self.lock = threading.Lock()

    def take_heartbeats(self, batch: list[dict]) -> list[str]:
        with self.lock:
            self.batches.append(len(batch))
            self.delays.extend(time.time() - sealed["payload"]["sent_at"] for sealed in batch)
        return []

    @property
    def taken(self) -> int:
        with self.lock:
            return sum(self.batches)


def sealed(number: int, sent_at: float) -> dict:
    """The shape of an agent's sealed heartbeat (the listener reads when it was sent; nothing verifies it here)."""
    return {"payload": {"node": f"n{number}", "seq": number, "sent_at": sent_at}, "signature": "", "key": ""}


@pytest.fixture
def listening(tmp_path):
    conf_file = tmp_path / "pacing.conf"
    exchange = f"pacing{uuid.uuid4().hex[:8]}"
    conf_file.write_text(f"[DEFAULT]\ntransport_url = {TRANSPORT_URL}\ncontrol_exchange = {exchange}\n")
    conf = config.make_conf([str(conf_file)], with_messaging=True)
    rpc.coordinator_defaults(conf)
    transport = rpc.heartbeat_transport(conf)
    intake = Intake()
    server = rpc.heartbeat_listener(transport, intake, None, rpc.COORDINATOR_PREFETCH)
    server.start()
    send = rpc.heartbeat_sender(transport, "n1")
    try:
        yield server, intake, send
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_a_trickle_is_taken_whole_in_gathered_batches_and_a_burst_at_once(listening):
    server, intake, send = listening
    polls = server.listener._poll_style_listener
    assert isinstance(polls, rpc.PacedPolls)
    for number in range(60):  # 40 a second, one at a time, as a fleet's heartbeats come
        send(sealed(number, time.time()))
        time.sleep(0.025)
    wait_until(lambda: intake.taken == 60, timeout=15)
    assert polls.rest > 0  # it rested between batches
    assert len(intake.batches) < 60 / 3  # and they gathered
    assert max(intake.delays) < rpc.PacedPolls.MAX_REST + 2  # none held long: a rest and a batch's wait

    for number in range(5):  # sent 5 s ago, as heartbeats queued while the coordinators fell behind
        send(sealed(number, time.time() - 5))
    wait_until(lambda: intake.taken == 65, timeout=15)
    assert polls.rest == 0  # a backlog is taken without rests

    for number in range(200):  # a burst: whole batches wait, and the rest shrinks
        send(sealed(number, time.time()))
    wait_until(lambda: intake.taken == 265, timeout=15)
    assert polls.rest < rpc.PacedPolls.MAX_REST
