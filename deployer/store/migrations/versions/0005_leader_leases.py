"""Leader leases: the beat's lead expires unless its holder renews it (issue 26 #14).

The advisory lock (PostgreSQL) and the flock (SQLite) that held the lead before stay held by a frozen
process (SIGSTOP, a hung host that keeps its TCP session): every sweep stopped with no one noticing. A lease
row with an expiry in the database's own clock is taken over once its holder stops renewing it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leader_leases",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leader_leases")
