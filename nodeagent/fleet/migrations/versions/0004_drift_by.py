"""A drift names who made the change, where the node could tell (the writer process, its unit and user).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("drift") as drift:
        drift.add_column(sa.Column("by", sa.JSON))  # a messages.Writer; NULL: no event named anyone


def downgrade() -> None:
    with op.batch_alter_table("drift") as drift:
        drift.drop_column("by")
