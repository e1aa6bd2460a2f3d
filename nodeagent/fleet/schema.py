"""The inventory's schema, versioned by Alembic: ``nodeagentctl db upgrade`` brings any earlier database to the
code's revision, as ``neutron-db-manage upgrade heads`` does for Neutron's.

A database made before migrations existed (its tables made by ``create_all``, no ``alembic_version``) is the
first revision's schema: it is stamped so, then upgraded like any other.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")
FIRST_REVISION = "0001"


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The revision this code expects."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current(engine: Engine) -> str | None:
    """The database's revision: None when it has no tables at all, FIRST_REVISION when made before migrations."""
    with engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
        if revision is None and inspect(connection).has_table("nodes"):
            return FIRST_REVISION
        return revision


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the database to ``revision``; returns (from, to). Each migration runs in a transaction (where the
    database has transactional DDL: PostgreSQL and SQLite; MariaDB commits each statement)."""
    before = current(engine)
    with engine.begin() as connection:
        config = _config(connection)
        if before == FIRST_REVISION and MigrationContext.configure(connection).get_current_revision() is None:
            command.stamp(config, FIRST_REVISION)  # made by create_all before migrations existed
        command.upgrade(config, revision)
    return before, current(engine) or ""
