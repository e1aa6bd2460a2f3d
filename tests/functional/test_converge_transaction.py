"""A change renders the fleet before its transaction opens, on SQLite, a real MariaDB and a real PostgreSQL.

The server ends a transaction idle for ``database_idle_transaction_timeout`` (what frees a hung coordinator's
rows within the agents' down time); a change whose render takes longer than that is still stored, and a node
whose facts change while the fleet renders gets a document rendered from its new facts.
"""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from nodeagent.fleet.inventory import Node, SiteVariable
from nodeagent.wire import box, trust
from nodeagent.testing.coordinators import TUNNEL_ROLE
from tests.conftest import set_up_coordinator

BOX = box.public_text(box.X25519PrivateKey.generate().public_key())
# Node 'slow' takes about two seconds to render (a million loop turns); every other node, a millisecond.
ROLE = """{% if node == "slow" %}{% set spent %}{% for i in range(1000) %}{% for j in range(1000) %}{{ j }}\
{% endfor %}{% endfor %}{% endset %}{% endif %}""" + TUNNEL_ROLE


def facts(address: str) -> dict:
    return {"interfaces": {"eth1": {"ipv4": [f"{address}/24"]}}}  # the overlay's (TUNNEL_ROLE)


def fleet(tmp_path, database_url: str):
    """A coordinator whose server ends a transaction idle for 1 s, with two nodes carrying the role: n2 and
    slow (pending: nothing is pushed, no broker needed)."""
    (tmp_path / "roles").mkdir()
    (tmp_path / "roles/tunnel.yaml.j2").write_text(ROLE)
    made = set_up_coordinator(tmp_path, f"database_connection = {database_url}\nroles_dir = {tmp_path / 'roles'}\n"
                                        "database_lock_timeout = 1\ndatabase_idle_transaction_timeout = 1\n")
    for name in ("n2", "slow"):  # each enrols
        made.reports.report_state(trust.seal({"node": name, "seq": 1, "status": {"generation": 0}, "events": [],
                                              "box_key": BOX}, Ed25519PrivateKey.generate()))
    with made.inventory.session() as session:
        for number, node in enumerate(session.scalars(select(Node).order_by(Node.name)), 1):
            node.facts, node.roles = facts(f"198.18.0.{number}"), ["tunnel"]
        session.merge(SiteVariable(key="tag", value="first"))
    return made


def tunnel(made, host: str) -> dict:
    """The node's stored tunnel settings."""
    return made.inventory.document(host).body["resources"][0]["settings"]["ovs"]


@pytest.mark.parametrize("database_url", ["mariadb", "postgresql"], indirect=True)
def test_a_change_whose_render_outlasts_the_idle_transaction_timeout_is_stored(tmp_path, database_url):
    made = fleet(tmp_path, database_url)
    with made.inventory.engine.connect() as connection:  # the server does end a transaction idle for 1 s ...
        connection.execute(text("SELECT COUNT(*) FROM nodes"))  # a table read: MariaDB's transaction begins
        time.sleep(2)
        with pytest.raises(OperationalError):
            connection.execute(text("SELECT COUNT(*) FROM nodes"))
    started = time.monotonic()  # ... and node slow alone renders for longer
    made.desired.roles.render("slow", ["tunnel"], {"tag": "x"}, {}, facts("198.18.0.2"))
    assert time.monotonic() - started > 1.5

    assert sorted(host for host, _ in made.settings.set_variable("tag", "blue")) == ["n2", "slow"]
    assert tunnel(made, "slow") == {"local_ip": "198.18.0.2", "tag": "blue"}
    assert tunnel(made, "n2") == {"local_ip": "198.18.0.1", "tag": "blue"}
    assert [e.type for e in made.inventory.events("slow", "state.set")] == ["state.set"]


def test_a_node_whose_facts_change_while_the_fleet_renders_gets_a_document_of_its_new_facts(tmp_path,
                                                                                              database_url):
    made = fleet(tmp_path, database_url)
    assert made.settings.set_variable("tag", "blue")  # first documents
    written: list[float] = []

    def new_facts(_session: Session) -> None:
        """Once the change's trial is rolled back (the fleet renders next, with no transaction open): n2's
        agent reports it moved to another address, written by another session while nothing holds its row."""
        if not written:
            written.append(time.monotonic())
            with made.inventory.session() as other:
                other.get(Node, "n2").facts = facts("198.18.0.22")

    event.listen(Session, "after_rollback", new_facts)
    try:
        stored = dict(made.settings.set_variable("tag", "green"))
    finally:
        event.remove(Session, "after_rollback", new_facts)
    assert written, "the change was not tried before its transaction"
    assert sorted(stored) == ["n2", "slow"] and stored["n2"] == 2
    assert tunnel(made, "n2") == {"local_ip": "198.18.0.22", "tag": "green"}  # rendered again, from its new facts
    assert tunnel(made, "slow") == {"local_ip": "198.18.0.2", "tag": "green"}
