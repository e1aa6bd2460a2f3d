"""When an agent casts its heartbeat and when it calls: the talker's decision, heartbeat by heartbeat.

A real agent's talker (its keys, spool, enforcer, health) answered by a real coordinator channel that signs
each answer for its request; only the transport is left out: the coordinator is a local object and the cast
appends to a list (tests/functional/test_heartbeat_casts.py runs the same over RabbitMQ)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeagent.cli import config
from nodeagent.node.agent import Agent
from nodeagent.wire import rpc
from nodeagent.wire.messages import ReportAnswer
from nodeagent.wire.protocol import CoordinatorChannel


class Coordinator:
    """Answers each report alive (asking for casts unless told otherwise), signed for that very request."""

    def __init__(self, directory: Path):
        self.channel = CoordinatorChannel(directory / "coordinator.key", FileNotFoundError)
        self.channel.create_key()
        (directory / "coordinator.pub").write_text(self.channel.public_key_text())
        self.calls: list[dict] = []
        self.offer_casts = True

    def report_state(self, sealed: dict) -> dict:
        self.calls.append(sealed["payload"])
        return self.channel.reply(sealed, ReportAnswer(status="alive", desired_generation=0,
                                                       cast=self.offer_casts).to_dict())

    def fetch_state(self, sealed: dict) -> dict:
        return self.channel.reply(sealed, None)  # no document for it yet


@pytest.fixture
def talker(tmp_path):
    coordinator = Coordinator(tmp_path)
    (tmp_path / "n1.conf").write_text("[DEFAULT]\ntransport_url = fake:/\nreport_interval = 1\n")
    conf = config.make_conf([str(tmp_path / "n1.conf")], with_messaging=True)
    for name, value in {"host": "n1", "state_dir": str(tmp_path / "state"), "root": str(tmp_path / "root"),
                        "coordinator_public_key": str(tmp_path / "coordinator.pub"), "systemctl": "false"}.items():
        conf.set_override(name, value)
    agent = Agent(conf)
    agent.prepare()
    talker = agent.talker
    talker.coordinator = lambda: coordinator
    talker.casts = []  # stands for the broker: each cast heartbeat appended
    talker.cast = talker.casts.append
    talker.answering = coordinator
    talker.report()  # the first report is called: nobody asked for casts yet
    yield talker
    agent.stop()


def sent(talker, heartbeats: int = 1) -> list[str]:
    """How each of the next heartbeats went: 'cast' or 'call'."""
    how = []
    for _ in range(heartbeats):
        calls, casts = len(talker.answering.calls), len(talker.casts)
        talker.report()
        how.append("call" if len(talker.answering.calls) > calls else "cast" if len(talker.casts) > casts else "-")
    return how


def test_plain_heartbeats_are_cast_once_a_call_was_answered_asking_for_casts(talker):
    assert talker.answering.calls[0]["held"] == 0  # the agent says what it holds: casts are offered to it
    assert sent(talker, 3) == ["cast", "cast", "cast"]
    assert talker.casts[-1]["payload"]["node"] == "n1" and talker.casts[-1]["signature"]  # signed, like a call


def test_one_heartbeat_in_full_report_every_is_still_called(talker):
    assert sent(talker, rpc.FULL_REPORT_EVERY) == ["cast"] * (rpc.FULL_REPORT_EVERY - 1) + ["call"]


def test_events_facts_a_report_next_or_a_failed_cast_make_the_next_heartbeat_a_call(talker):
    talker.record("test.event", "something to tell")
    assert sent(talker, 2) == ["call", "cast"]  # the event goes with a call, and is taken
    talker.gather = lambda: {"hostname": "n1", "interfaces": {"eth1": {"mtu": 9000}}}
    talker.facts_changed.set()  # an interface changed, and so did the facts
    assert sent(talker, 2) == ["call", "cast"]  # new facts are called: a cast carries none
    talker.report_next()  # the coordinator has something to say
    assert sent(talker, 2) == ["call", "cast"]

    def broker_away(sealed: dict) -> None:
        raise ConnectionError("broker away")
    talker.cast = broker_away
    assert sent(talker) == ["-"]  # lost: the next says whether the coordinator is there
    talker.cast = talker.casts.append
    assert sent(talker, 2) == ["call", "cast"]


def test_no_casts_unless_the_coordinator_asks_for_them(talker):
    talker.answering.offer_casts = False  # e.g. a coordinator with heartbeat_casts = false
    assert sent(talker) == ["cast"]  # the agent hears it at its next call
    talker.report_next()
    assert sent(talker, 4) == ["call", "call", "call", "call"]


def test_the_first_heartbeat_lost_is_followed_at_once_and_only_the_first(talker):
    """A coordinator killed with the call in hand: the next heartbeat (another coordinator takes it) comes now,
    not an interval later, or the node's silence would reach the down time."""
    answering = talker.answering

    class Killed:
        def report_state(self, sealed: dict) -> dict:
            raise TimeoutError("no answer")

    talker.coordinator = lambda: Killed()
    talker.report_next()  # a call, so that it can be lost
    talker.report_soon.clear()
    assert talker.report() is None and talker.report_soon.is_set()  # the next one at once
    talker.report_soon.clear()
    assert talker.report() is None and not talker.report_soon.is_set()  # away: every interval, as before
    talker.coordinator = lambda: answering
    assert sent(talker) == ["call"]

    def broker_away(sealed: dict) -> None:
        raise ConnectionError("broker away")
    assert sent(talker) == ["cast"]  # answered alive with casts: the next is cast
    talker.cast = broker_away
    talker.report_soon.clear()
    talker.report()
    assert talker.report_soon.is_set()  # a lost cast likewise
