"""Indexes for GET by name and status-filtered lists (benchmarks/scale.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deployments_owner_name", "deployments", ["owner_id", "name", "created_at"])
    op.create_index(
        "ix_deployments_owner_status_created", "deployments", ["owner_id", "status", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_deployments_owner_status_created", table_name="deployments")
    op.drop_index("ix_deployments_owner_name", table_name="deployments")
