"""The inventory on SQLite, a real MariaDB and a real PostgreSQL: its schema made and upgraded by Alembic, rows
kept across an upgrade, a database made before migrations adopted, and the models matching the migrations."""

from __future__ import annotations

import itertools

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from nodeagent.fleet import schema
from nodeagent.fleet.inventory import Base, DriftRecord, Inventory, Node, StateDocument
from nodeagent.wire import box
from tests.conftest import run_cli

BACKENDS = ["sqlite", "mariadb", "postgresql"]
_names = itertools.count()  # databases of this module's own: a prefix database_url does not use


def test_a_new_database_gets_every_table_at_the_head_revision_and_round_trips_sealed_rows(database_url, tmp_path):
    vault = box.Vault(tmp_path / "secrets.key")
    inventory = Inventory(database_url, vault)
    assert not inventory.has_schema()
    assert inventory.create_schema() == (None, schema.head())
    assert inventory.has_schema()
    with inventory.session() as session:
        session.add(Node(name="compute1", roles=["compute"], variables={"a": "b"}, facts={"interfaces": {}},
                         health={}, status={}, enrolment="accepted"))
        session.flush()
        session.add(StateDocument(node="compute1", generation=1, body={"resources": [], "password": "s3cret"}))
    assert inventory.document("compute1").body["password"] == "s3cret"
    with create_engine(database_url).connect() as connection:  # sealed at rest: not readable in the table
        raw = connection.execute(text("SELECT body FROM documents")).scalar()
    assert "s3cret" not in raw
    assert inventory.create_schema() == (schema.head(), schema.head())  # again: nothing to do


def test_open_drift_is_counted_per_node_by_resource(database_url):
    """What node list's Drifted column and the web view's fleet page show, counted by each database."""
    inventory = Inventory(database_url)
    inventory.create_schema()
    with inventory.session() as session:
        for uid, (node, resource, fixed, closed) in enumerate([
                ("n1", "r1", None, None), ("n1", "r1", None, None), ("n1", "r2", None, None), ("n1", "r3", 5.0, None),
                ("n2", "r1", None, 6.0), ("n3", "r1", None, None)]):
            session.add(DriftRecord(uid=f"d{uid}", node=node, resource=resource, driver="ini", generation=1,
                                    state="left", changes=[], seen_at=1.0, fixed_at=fixed, closed_at=closed))
    assert inventory.open_drift_counts() == {"n1": 2, "n3": 1}


def test_an_upgrade_from_the_previous_revision_keeps_every_row(database_url):
    engine = create_engine(database_url)
    schema.upgrade(engine, "0001")
    with engine.begin() as connection:  # rows as the previous version wrote them
        connection.execute(text(
            "INSERT INTO nodes (name, enrolment, roles, variables, facts, health, status, alive, desired_generation,"
            " observed_generation, created_at) VALUES ('network1', 'accepted', '[\"network\"]', '{}', '{}', '{}',"
            " '{}', :alive, 3, 3, 1.0)"), {"alive": True})
    assert schema.current(engine) == "0001"
    assert schema.upgrade(engine) == ("0001", schema.head())
    inventory = Inventory(database_url)
    node = inventory.node("network1")
    assert (node.roles, node.desired_generation, node.alive, node.held) == (["network"], 3, True, None)
    with inventory.session() as session:
        session.get(Node, "network1").held = "interface eth1 has no IPv4 address"
    assert inventory.node("network1").held == "interface eth1 has no IPv4 address"


def test_a_database_made_before_migrations_is_adopted_at_the_first_revision_then_upgraded(database_url):
    engine = create_engine(database_url)
    schema.upgrade(engine, "0001")
    with engine.begin() as connection:  # what create_all made: the tables, no alembic_version
        connection.execute(text("DROP TABLE alembic_version"))
        connection.execute(text("INSERT INTO variables (\"key\", value) VALUES ('region', 'RegionOne')"
                                if engine.dialect.name != "mysql" else
                                "INSERT INTO variables (`key`, value) VALUES ('region', 'RegionOne')"))
    assert schema.current(engine) == schema.FIRST_REVISION
    assert schema.upgrade(engine) == (schema.FIRST_REVISION, schema.head())
    assert Inventory(database_url).variables() == {"region": "RegionOne"}


def test_the_models_match_what_the_migrations_make(database_url):
    """A column added to a model without a migration (or the reverse) fails here, on every backend."""
    engine = create_engine(database_url)
    schema.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = [d for d in compare_metadata(context, Base.metadata) if not _index_naming_only(d)]
    assert differences == []


def _index_naming_only(difference) -> bool:
    # MariaDB makes a unique constraint an index: the same rule, spelled differently in reflection.
    return isinstance(difference, tuple) and difference[0] in ("add_index", "remove_index", "add_constraint",
                                                               "remove_constraint") and \
        getattr(difference[1], "table", None) is not None and difference[1].table.name in ("events", "drift") \
        and {c.name for c in difference[1].columns} == {"uid"}


def test_nodeagentctl_db_upgrade_and_version_on_a_server_database(sql_servers, tmp_path):
    url = sql_servers["postgresql"].create_database(f"ctl{next(_names)}")
    config = tmp_path / "coordinator.conf"
    config.write_text(f"[coordinator]\nstate_dir = {tmp_path / 'state'}\ndatabase_connection = {url}\n")

    def run(*args):
        return run_cli("--config-file", str(config), *args, program="nodeagentctl")

    version = run("db", "version", "-f", "value")
    assert version.returncode == 0, version.stderr
    assert version.stdout.split() == ["(empty)", schema.head(), "False"]
    upgraded = run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"inventory at revision {schema.head()} (was empty)" in upgraded.stderr
    assert run("db", "version", "-f", "value").stdout.split() == [schema.head(), schema.head(), "True"]
    assert "unchanged" in run("db", "upgrade").stderr


@pytest.fixture(params=BACKENDS)
def lock_url(request, tmp_path):
    from nodeagent.fleet.coordination import backend_url

    if request.param == "sqlite":
        return backend_url(f"sqlite:///{tmp_path / 'coordinator.db'}", tmp_path)
    return backend_url(request.getfixturevalue("sql_servers")[request.param].create_database(
        f"locks{next(_names)}"), tmp_path)


def test_coordinators_share_locks_on_the_inventory_backend_and_a_killed_holder_lets_go(lock_url, tmp_path):
    import subprocess
    import sys
    import time

    from nodeagent.fleet.coordination import Coordination
    from nodeagent.kit.errors import Unavailable
    from nodeagent.testing.waiting import wait_until

    first, second = Coordination(lock_url, "c1"), Coordination(lock_url, "c2")
    try:
        with first.held("converge", wait=1):
            with pytest.raises(Unavailable, match="another coordinator holds lock 'converge'"):
                with second.held("converge", wait=1):
                    pass
        with second.held("converge", wait=1):  # released: free at once
            pass
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sys, time\nfrom nodeagent.fleet.coordination import Coordination\n"
            f"c = Coordination({lock_url!r}, 'holder')\nassert c.claim('neutron')\n"
            "print('held', flush=True)\ntime.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            assert not second.claim("neutron")
            holder.kill()
            holder.wait(10)
            killed = time.monotonic()
            wait_until(lambda: second.claim("neutron"), timeout=10)
            assert time.monotonic() - killed < 5
        finally:
            holder.kill()
    finally:
        first.stop()
        second.stop()


def test_a_time_keeps_its_milliseconds_on_every_database(database_url):
    """MariaDB's FLOAT is single precision (a Unix time in two-minute steps): times are DOUBLE there."""
    inventory = Inventory(database_url)
    inventory.create_schema()
    with inventory.session() as session:
        session.add(Node(name="n1", roles=[], variables={}, facts={}, health={}, status={},
                         last_heartbeat=1796433659.197, created_at=1796433601.5))
    node = inventory.node("n1")
    assert (node.last_heartbeat, node.created_at) == (1796433659.197, 1796433601.5)
