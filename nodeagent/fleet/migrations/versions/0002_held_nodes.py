"""A node whose roles cannot be rendered is held, with the reason, while the rest of the fleet moves on.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as nodes:
        nodes.add_column(sa.Column("held", sa.Text))  # why its roles do not render; NULL: not held
