"""An agent's heartbeats over the real RabbitMQ with a real coordinator: cast (not called) once its node is
answered alive, taken in batches, and called again when the coordinator has something to say: a document the
agent missed (stored without a push), the node coming back after it was marked down."""

from __future__ import annotations

import json
import signal
import time
import uuid

from nodeagent.testing.lab import Fleet
from nodeagent.testing.waiting import wait_until
from nodeagent.wire import rpc
from tests.sniffer import Sniffer


def document(marker: str) -> dict:
    return {"resources": [{"id": "marker", "driver": "file", "path": "/etc/neutron/marker.conf",
                           "content": f"{marker}\n"}]}


def row(fleet: Fleet, name: str) -> dict:
    rows = json.loads(fleet.ctl("node", "list", "-f", "json").stdout)
    return next((r for r in rows if r["Host"] == name), {})


def converged(fleet: Fleet, name: str, generation: int) -> bool:
    found = row(fleet, name)
    return found.get("State") == "converged" and found.get("Generation") == f"{generation}/{generation}"


def set_state(fleet: Fleet, name: str, marker: str, *options: str) -> None:
    path = fleet.directory / f"{marker}.json"
    path.write_text(json.dumps(document(marker)))
    fleet.ctl("node", "set-state", name, str(path), *options)


class Traffic:
    """What the node sent the coordinators since the last look: heartbeats cast, reports called."""

    def __init__(self, sniffer: Sniffer, name: str):
        self.sniffer, self.name, self.seen = sniffer, name, 0

    def take(self) -> tuple[int, int]:
        bodies, self.seen = self.sniffer.bodies[self.seen:], len(self.sniffer.bodies)
        messages = [json.loads(json.loads(body)["oslo.message"]) for body in bodies]
        cast = [m for m in messages if m.get("event_type") == rpc.HEARTBEAT_EVENT
                and m["payload"]["payload"]["node"] == self.name]
        called = [m for m in messages if m.get("method") == "report_state"
                  and m["args"]["sealed"]["payload"]["node"] == self.name]
        return len(cast), len(called)


def test_heartbeats_are_cast_once_alive_and_called_when_the_coordinator_has_something_to_say(tmp_path):
    exchange = f"nodeagent-hb-{uuid.uuid4().hex[:8]}"
    sniffer = Sniffer(exchange)
    fleet = Fleet(tmp_path, report_interval=1, auto_accept=True, exchange=exchange,
                  coordinator_options={"agent_down_time": 4})
    try:
        fleet.add_node("hb1", [])
        fleet.start("coordinator")
        fleet.start("hb1")
        wait_until(lambda: row(fleet, "hb1").get("Alive") == ":-)", timeout=60)
        set_state(fleet, "hb1", "one")
        wait_until(lambda: converged(fleet, "hb1", 1), timeout=30)
        traffic = Traffic(sniffer, "hb1")
        traffic.take()
        time.sleep(6)
        cast, called = traffic.take()
        assert cast >= 4 and called <= 1  # one in FULL_REPORT_EVERY (30) is called
        assert row(fleet, "hb1")["Alive"] == ":-)"  # heard through its casts alone

        # Stored, not pushed: the next heartbeat shows the node behind, the coordinator asks for a full report,
        # whose answer makes the agent pull. Without the ask, only the 30th heartbeat would have been called.
        set_state(fleet, "hb1", "two", "--no-push")
        wait_until(lambda: converged(fleet, "hb1", 2), timeout=15)
        assert (fleet.directory / "hb1/root/etc/neutron/marker.conf").read_text() == "two\n"
        assert traffic.take()[1] >= 1

        # Silent past the down time: marked down. Back, its first heartbeat is still cast (it does not know):
        # the coordinator asks it for a full report, which brings it back up.
        fleet.processes["hb1"].send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: row(fleet, "hb1").get("Alive") == "XXX", timeout=30)
        finally:
            fleet.processes["hb1"].send_signal(signal.SIGCONT)
        wait_until(lambda: row(fleet, "hb1").get("Alive") == ":-)", timeout=15)
        types = [e["Type"] for e in json.loads(fleet.ctl("events", "-f", "json", "--node", "hb1").stdout)]
        assert types.index("node.down") < len(types) - 1 - types[::-1].index("node.up")
    finally:
        fleet.close()
        sniffer.close()
