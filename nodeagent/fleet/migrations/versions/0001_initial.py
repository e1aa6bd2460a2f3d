"""The inventory as it was before migrations: nodes, documents, events, drift, variables, secrets, node trust.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("public_key", sa.String(64)),
        sa.Column("enrolment", sa.String(16), nullable=False),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("variables", sa.JSON, nullable=False),
        sa.Column("facts", sa.JSON, nullable=False),
        sa.Column("health", sa.JSON, nullable=False),
        sa.Column("status", sa.JSON, nullable=False),
        sa.Column("alive", sa.Boolean, nullable=False),
        sa.Column("last_heartbeat", sa.Float),
        sa.Column("desired_generation", sa.Integer, nullable=False),
        sa.Column("observed_generation", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("node", sa.String(255), sa.ForeignKey("nodes.name"), nullable=False, index=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(32), unique=True),
        sa.Column("at", sa.Float, nullable=False, index=True),
        sa.Column("node", sa.String(255), index=True),
        sa.Column("type", sa.String(64), nullable=False, index=True),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "drift",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(32), nullable=False, unique=True),
        sa.Column("node", sa.String(255), nullable=False, index=True),
        sa.Column("resource", sa.String(128), nullable=False),
        sa.Column("driver", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("seen_at", sa.Float, nullable=False, index=True),
        sa.Column("fixed_at", sa.Float),
        sa.Column("closed_at", sa.Float),
    )
    op.create_table(
        "variables",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "secrets",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("set_at", sa.Float, nullable=False),
    )
    op.create_table(
        "node_trust",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("box_key", sa.String(64)),
    )
