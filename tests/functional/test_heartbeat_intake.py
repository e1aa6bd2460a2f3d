"""A plain heartbeat on SQLite, a real MariaDB and a real PostgreSQL: a few statements that write only what changed,
a batch of cast heartbeats in one transaction, and a replayed heartbeat accepted once even when two coordinators
are handed it at the same moment."""

from __future__ import annotations

import itertools
import re
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from nodeagent.fleet.inventory import Node, NodeTrust
from nodeagent.testing.waiting import wait_until
from nodeagent.wire import box, trust
from nodeagent.wire.protocol import Rejection
from tests.conftest import set_up_coordinator

BOX = box.public_text(box.X25519PrivateKey.generate().public_key())
STATUS = {"generation": 2, "counts": {"in_sync": 3}, "reconciled_generation": 2}


class Agent:
    """What a node sends: signed heartbeats with the next sequence."""

    def __init__(self, name: str = "n1"):
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        self.sequence = itertools.count(1)

    def heartbeat(self, status: dict = STATUS, load: float = 0.5, **more) -> dict:
        return trust.seal({"node": self.name, "seq": next(self.sequence), "box_key": BOX, "status": status,
                           "health": {"load": [load]}, "events": [], **more}, self.key)


def coordinator(tmp_path, database_url: str, name: str = "c1"):
    (tmp_path / name).mkdir()
    return set_up_coordinator(tmp_path / name, f"auto_accept = true\ndatabase_connection = {database_url}\n")


class Statements:
    """The SQL a coordinator sends its database, as the database receives it."""

    def __init__(self, engine):
        self.seen: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *args: self.seen.append(" ".join(args[2].split())))

    def take(self) -> list[str]:
        seen, self.seen = self.seen, []
        return seen


def set_columns(statement: str) -> set[str]:
    return set(re.findall(r"(\w+)=", statement.split(" SET ")[1].split(" WHERE ")[0]))


def test_a_heartbeat_that_moves_nothing_but_its_time_is_two_statements_and_no_node_row_write(tmp_path, database_url):
    made, agent = coordinator(tmp_path, database_url), Agent()
    assert made.reports.report_state(agent.heartbeat()).status == "new"  # enrolment: the whole intake
    statements = Statements(made.inventory.engine)

    assert made.reports.report_state(agent.heartbeat()).status == "alive"
    read, spend = [s for s in statements.take() if s.split()[0] in ("SELECT", "UPDATE", "INSERT")]
    assert read.startswith("SELECT") and "FROM nodes" in read and "node_trust" in read
    assert spend.startswith("UPDATE node_trust SET") and "sequence <" in spend
    assert set_columns(spend) == {"sequence", "heard_at"}  # heard where no change holds a lock
    heard = made.inventory.node("n1")
    assert heard.last_heard == heard.heard_at > heard.last_heartbeat  # what node list shows: exact

    made.reports.report_state(agent.heartbeat(load=0.9))  # its load moved: not worth a row write yet
    assert not [s for s in statements.take() if s.startswith("UPDATE nodes")]
    assert made.inventory.node("n1").health == {"load": [0.5]}


def test_a_heartbeat_writes_the_node_row_when_its_status_or_services_moved_or_its_health_is_old(tmp_path,
                                                                                               database_url):
    made, agent = coordinator(tmp_path, database_url), Agent()
    made.reports.report_state(agent.heartbeat())
    statements = Statements(made.inventory.engine)
    converged = {**STATUS, "generation": 3, "reconciled_generation": 3}
    made.reports.report_state(agent.heartbeat(status=converged, load=0.9))  # with a status moved, its health too
    lock, node = [s for s in statements.take() if s.startswith(("SELECT nodes.name FROM", "UPDATE nodes"))]
    assert database_url.startswith("sqlite") or lock.endswith("FOR UPDATE SKIP LOCKED")
    assert set_columns(node) == {"status", "observed_generation", "health", "last_heartbeat"}
    made.reports.report_state(agent.heartbeat(status=converged, load=0.9))
    assert not [s for s in statements.take() if s.startswith("UPDATE nodes")]

    stopped = {"load": [0.9], "services": {"neutron-openvswitch-agent": False}}
    made.reports.report_state(agent.heartbeat(status=converged, health=stopped))  # a service stopped: stored at once
    assert set_columns(statements.take()[-1]) == {"health", "last_heartbeat"}
    assert made.inventory.node("n1").health["services"] == {"neutron-openvswitch-agent": False}

    made.reports.heartbeats.health_refresh = 0  # every change of its figures is stored
    made.reports.report_state(agent.heartbeat(status=converged, load=0.7))
    assert set_columns(statements.take()[-1]) == {"health", "last_heartbeat"}
    node = made.inventory.node("n1")
    assert (node.observed_generation, node.status["reconciled_generation"], node.health) == (3, 3, {"load": [0.7]})


def test_a_heartbeat_with_events_or_facts_or_from_a_silent_node_takes_the_whole_intake(tmp_path, database_url):
    made, agent = coordinator(tmp_path, database_url), Agent()
    made.reports.report_state(agent.heartbeat())
    made.reports.report_state(agent.heartbeat(facts={"hostname": "n1"}))
    assert made.inventory.node("n1").facts == {"hostname": "n1"}
    with made.inventory.session() as session:
        session.get(Node, "n1").alive = False  # what down detection does
    assert made.reports.report_state(agent.heartbeat()).status == "revived"
    assert [e.type for e in made.inventory.events("n1", "node.up")][-1:] == ["node.up"]


def test_a_replayed_heartbeat_is_refused_and_changes_nothing(tmp_path, database_url):
    made, agent = coordinator(tmp_path, database_url), Agent()
    made.reports.report_state(agent.heartbeat())
    captured = agent.heartbeat(status={**STATUS, "generation": 5})
    newer = agent.heartbeat(status={**STATUS, "generation": 6})
    assert made.reports.report_state(newer).status == "alive"
    answer = made.reports.report_state(captured)  # refused unsigned, like a forgery: no signed answer to replay
    assert isinstance(answer, Rejection) and answer.reason == "replayed: sequence 2 is not above 3"
    assert made.inventory.node("n1").observed_generation == 6


@pytest.mark.parametrize("database_url", ["mariadb", "postgresql"], indirect=True)
def test_two_coordinators_handed_the_same_heartbeat_at_once_accept_it_once(tmp_path, database_url):
    """The freshness check is a conditional update: read-then-write would let both accept a replay."""
    first, second, agent = coordinator(tmp_path, database_url, "c1"), coordinator(tmp_path, database_url, "c2"), \
        Agent()
    first.reports.report_state(agent.heartbeat())
    for _ in range(20):
        sealed, barrier, answers = agent.heartbeat(), threading.Barrier(2), []

        def hand(made, sealed=sealed, barrier=barrier, answers=answers):
            barrier.wait()
            answer = made.reports.report_state(sealed)
            answers.append("rejected" if isinstance(answer, Rejection) else answer.status)

        threads = [threading.Thread(target=hand, args=(made,)) for made in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == ["alive", "rejected"]


def heard(made, agent: Agent, **more) -> bool:
    try:
        return made.reports.report_state(agent.heartbeat(**more)).status == "alive"
    except OperationalError:  # still waiting for the row
        return False


@pytest.mark.parametrize("database_url", ["mariadb", "postgresql"], indirect=True)
def test_a_transaction_holding_a_nodes_row_neither_silences_it_nor_holds_the_intake(tmp_path, database_url):
    """What a change does while it stores (it holds every node's row until it commits), and what a coordinator
    hung inside a transaction does for as long as it is hung."""
    (tmp_path / "c1").mkdir()
    made = set_up_coordinator(tmp_path / "c1", f"auto_accept = true\ndatabase_connection = {database_url}\n"
                                               "database_lock_timeout = 1\ndatabase_idle_transaction_timeout = 4\n")
    agent = Agent("n1")
    for _ in range(2):
        made.reports.report_state(agent.heartbeat())
    before = made.inventory.node("n1").last_heartbeat
    made.reports.heartbeats.health_refresh = 0  # the heartbeat below wants the node's row (its load moved)
    hung = made.inventory.engine.connect()
    hung.begin()
    hung.execute(text("UPDATE nodes SET held = NULL WHERE name = 'n1'"))
    try:
        started = time.monotonic()
        assert made.reports.report_state(agent.heartbeat(load=0.7)).status == "alive"  # heard, not waiting
        assert time.monotonic() - started < 1
        with made.inventory.session() as session:
            heard_at = session.get(NodeTrust, "n1").heard_at  # what down detection reads
        assert heard_at > before
        made.liveness.down_time = time.time() - (before + heard_at) / 2  # nodes.last_heartbeat: silent, not this
        assert made.liveness.check_down() == []
        with pytest.raises(OperationalError):  # a report that needs the row waits a second, not the hang
            made.reports.report_state(agent.heartbeat(facts={"hostname": "n1"}))
        assert time.monotonic() - started < 4
        # The server ends the idle transaction after 4 s: the node's row is written again.
        wait_until(lambda: heard(made, agent, facts={"hostname": "n1"}), timeout=20)
    finally:
        hung.invalidate()  # its session was ended by the server
    node = made.inventory.node("n1")
    assert node.alive and node.last_heartbeat > before and node.facts == {"hostname": "n1"}


def accepted_fleet(made, count: int) -> list[Agent]:
    agents = [Agent(f"n{number}") for number in range(count)]
    for agent in agents:
        assert made.reports.report_state(agent.heartbeat()).status == "new"
    return agents


def test_a_batch_of_cast_heartbeats_is_one_transaction(tmp_path, database_url):
    made = coordinator(tmp_path, database_url)
    agents = accepted_fleet(made, 20)
    before = {agent.name: made.inventory.node(agent.name).last_heard for agent in agents}
    statements = Statements(made.inventory.engine)
    transactions = []
    event.listen(made.inventory.engine, "commit", lambda connection: transactions.append(1))

    assert made.reports.take_heartbeats([agent.heartbeat(load=0.5) for agent in agents]) == []
    seen = [s for s in statements.take() if s.split()[0] in ("SELECT", "UPDATE")]
    # The trust rows locked (those another transaction holds passed over) and the nodes read; the sequences
    # spent: on SQLite (no row locks) a conditional update each, else one statement for all, the rows being the
    # transaction's. Nothing else moved: no node row is written.
    spends = 20 if database_url.startswith("sqlite") else 1
    assert len(seen) == 2 + spends and len(transactions) == 1
    assert seen[0].startswith("SELECT node_trust.name FROM node_trust")
    assert database_url.startswith("sqlite") or seen[0].endswith("FOR UPDATE SKIP LOCKED")
    for agent in agents:
        node = made.inventory.node(agent.name)
        assert node.last_heard > before[agent.name] and node.alive
    made.reports.heartbeats.health_refresh = 0  # each moved figure stored: the nodes' rows locked, one write
    statements.take()
    assert made.reports.take_heartbeats([agent.heartbeat(load=0.6) for agent in agents]) == []
    seen = [s for s in statements.take() if s.split()[0] in ("SELECT", "UPDATE")]
    assert len(seen) == 2 + spends + 1 + 1 and seen[-1].startswith("UPDATE nodes SET")
    assert {made.inventory.node(agent.name).health["load"][0] for agent in agents} == {0.6}
    assert made.metrics.report_seconds.collect()[0].samples  # counted like called reports
    with made.inventory.session() as session:
        assert {t.name: t.sequence for t in session.query(NodeTrust)} == {a.name: 3 for a in agents}
    again = [agents[0].heartbeat(), agents[0].heartbeat()]  # two of one node in a batch: the later one kept
    assert made.reports.take_heartbeats(again[::-1]) == []
    with made.inventory.session() as session:
        assert session.get(NodeTrust, agents[0].name).sequence == 5
    # The earlier of two moved the health, the later brings back what is stored: the later is what is kept.
    assert made.reports.take_heartbeats([agents[1].heartbeat(load=0.9), agents[1].heartbeat(load=0.6)]) == []
    assert made.inventory.node(agents[1].name).health == {"load": [0.6]}


def test_cast_heartbeats_that_need_an_answer_ask_their_node_for_a_full_report(tmp_path, database_url):
    made = coordinator(tmp_path, database_url)
    behind, silent, replayed, forged, fine = accepted_fleet(made, 5)
    with made.inventory.session() as session:
        session.get(Node, behind.name).desired_generation = 7  # a push it missed: it holds 2
        session.get(Node, silent.name).alive = False  # marked down: coming back is a full report's answer
    captured = replayed.heartbeat()
    made.reports.take_heartbeats([replayed.heartbeat()])
    last_heard = made.inventory.node(replayed.name).last_heard
    forgery = trust.seal({"node": forged.name, "seq": 99, "status": STATUS, "events": []},
                         Ed25519PrivateKey.generate())
    held_back = fine.heartbeat(status={**STATUS, "generation": 1}, held=7)  # applying 7 already: not behind

    ask = made.reports.take_heartbeats([behind.heartbeat(), silent.heartbeat(), captured, forgery, held_back])
    assert ask == [behind.name, silent.name]
    assert not made.inventory.node(silent.name).alive  # taken by the full report it is asked for, not here
    made.refusals.flush()
    refused = {e.node: e.detail for e in made.inventory.events(kind="report.refused")}
    assert "other than the node's accepted key" in refused[forged.name]
    # A cast heartbeat overtaken by a later report (called reports travel by another queue) is dropped unrecorded;
    # replayed, it changes nothing either (a called replay is refused: test_a_replayed_heartbeat_is_refused...).
    assert replayed.name not in refused
    assert made.inventory.node(replayed.name).last_heard == last_heard


def test_a_cast_heartbeat_queued_longer_than_the_down_time_is_dropped(tmp_path, database_url):
    made = coordinator(tmp_path, database_url)
    (agent,) = accepted_fleet(made, 1)
    before = made.inventory.node(agent.name).last_heard
    sealed = agent.heartbeat()
    made.reports.heartbeat_max_age = 30
    stale = trust.seal({**sealed["payload"], "sent_at": time.time() - 31}, agent.key)
    assert made.reports.take_heartbeats([stale]) == []
    assert made.inventory.node(agent.name).last_heard == before  # not heard: it may have died since
    made.refusals.flush()
    assert "a heartbeat sent 31 s ago dropped" in made.inventory.events(agent.name, "report.stale")[-1].detail
    assert made.reports.take_heartbeats([agent.heartbeat(sent_at=time.time())]) == []
    assert made.inventory.node(agent.name).last_heard > before


def test_a_node_behind_a_document_stored_moments_ago_is_not_asked_yet(tmp_path, database_url):
    """During a change every node's heartbeat may come between the store and the push's arrival: asking them all
    for a full report would have each pull the document the push brings anyway."""
    made = coordinator(tmp_path, database_url)
    (agent,) = accepted_fleet(made, 1)
    generation = made.desired.set_state(agent.name, {"resources": []}, push=False)
    assert made.reports.heartbeats.push_grace == made.conf.report_interval
    made.reports.heartbeats.push_grace = 60  # a push may take a minute to arrive
    assert made.reports.take_heartbeats([agent.heartbeat(held=generation - 1)]) == []
    made.reports.heartbeats.push_grace = 0  # as if the interval had passed: the push was missed
    assert made.reports.take_heartbeats([agent.heartbeat(held=generation - 1)]) == [agent.name]
    assert made.reports.take_heartbeats([agent.heartbeat(held=generation)]) == []
