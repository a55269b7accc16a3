"""Change feed: NOTIFY mcpfc_changes on every write to deployments and api_keys (PostgreSQL only).

A row-level trigger sends `d:<deployment id>` or `k:<api key id>` on the channel `mcpfc_changes`. The API's
read cache (deployer/api/hot_cache.py) listens and evicts by id. A trigger rather than application code,
so no writer (API, workers, recovery, the CLI) can forget to invalidate; PostgreSQL delivers the
notifications only when the writing transaction commits, and folds duplicates within one transaction.
On SQLite this migration does nothing (there is no feed and the cache stays off).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CHANNEL = "mcpfc_changes"
# (table, trigger function, payload prefix)
TABLES = (("deployments", "mcpfc_notify_deployment", "d"), ("api_keys", "mcpfc_notify_api_key", "k"))


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgresql():
        return
    for table, function, prefix in TABLES:
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
            BEGIN
                PERFORM pg_notify('{CHANNEL}', '{prefix}:' || COALESCE(NEW.id, OLD.id));
                RETURN NULL;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            f"""
            CREATE TRIGGER {function}
            AFTER INSERT OR UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {function}()
            """
        )


def downgrade() -> None:
    if not _postgresql():
        return
    for table, function, _prefix in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {function} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
