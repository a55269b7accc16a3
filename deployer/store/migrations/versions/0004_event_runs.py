"""Each deployment event names the run (task id) that wrote it, so `mcp-fc events` follows one run (issue 26 #3).

Events written before this revision have no run (NULL): a stream shows them only for a deployment whose
current run wrote none.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployment_events") as batch:
        batch.add_column(sa.Column("task_id", sa.String(length=64), nullable=True))
    op.create_index("ix_deployment_events_run", "deployment_events", ["deployment_id", "task_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_deployment_events_run", table_name="deployment_events")
    with op.batch_alter_table("deployment_events") as batch:
        batch.drop_column("task_id")
