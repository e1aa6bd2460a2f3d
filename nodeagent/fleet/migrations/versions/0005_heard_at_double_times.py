"""When each node was last heard, beside its sequence; times in double precision on MariaDB.

A heartbeat's liveness is written where a change never holds a lock (a change's transaction holds the nodes'
rows until it commits). And MariaDB's FLOAT is single precision: a Unix time in it moves in steps of two
minutes, which made down detection there meaningless; every time column becomes DOUBLE (PostgreSQL's FLOAT
is double precision already, SQLite's REAL too).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# table -> (column, nullable) of every time (and the soak, in seconds) stored as FLOAT before
TIMES = {
    "nodes": [("last_heartbeat", True), ("created_at", False)],
    "documents": [("created_at", False)],
    "events": [("at", False)],
    "drift": [("seen_at", False), ("fixed_at", True), ("closed_at", True)],
    "secrets": [("set_at", False)],
    "rollouts": [("soak", False), ("created_at", False), ("updated_at", False)],
    "rollout_nodes": [("since", True)],
}


def upgrade() -> None:
    with op.batch_alter_table("node_trust") as trust:
        trust.add_column(sa.Column("heard_at", sa.Double))  # NULL: not heard since the upgrade (nodes.last_heartbeat)
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        for table, columns in TIMES.items():
            for column, nullable in columns:
                op.alter_column(table, column, type_=sa.Double, existing_type=sa.Float, existing_nullable=nullable)


def downgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        for table, columns in TIMES.items():
            for column, nullable in columns:
                op.alter_column(table, column, type_=sa.Float, existing_type=sa.Double, existing_nullable=nullable)
    with op.batch_alter_table("node_trust") as trust:
        trust.drop_column("heard_at")
