"""Rollouts: a change pushed in batches, each batch judged healthy before the next (``nodeagentctl rollout``).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("selection", sa.Text, nullable=False),
        sa.Column("change", sa.Text, nullable=False),
        sa.Column("canary", sa.Integer, nullable=False),
        sa.Column("max_unavailable", sa.String(8), nullable=False),
        sa.Column("soak", sa.Float, nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "rollout_nodes",
        sa.Column("rollout", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
        sa.Column("node", sa.String(255), primary_key=True),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("since", sa.Float),
        sa.Column("generation", sa.Integer),
        sa.Column("reason", sa.Text),
    )
    op.create_index("ix_rollout_nodes_state", "rollout_nodes", ["state"])
