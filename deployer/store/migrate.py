"""Bring the database schema to head with Alembic. Safe to call from every process at start-up."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from deployer.store.db import engine_for, normalise_url
from deployer.store.locks import exclusive

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x6D6370_6663  # "mcpfc": one advisory lock for schema changes on PostgreSQL


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url))
    return cfg


def upgrade(url: str) -> None:
    """Migrate to head. API replicas and workers start together, so migrations are serialised."""
    url = normalise_url(url)
    cfg = alembic_config(url)
    engine = engine_for(url)
    with exclusive(engine, key=_LOCK_ID, name="migrate") as held:
        if held.connection is not None:  # PostgreSQL: migrate on the connection that holds the lock
            _upgrade_on(cfg, held.connection)
            return
        with engine.connect() as conn:
            _upgrade_on(cfg, conn)


def _upgrade_on(cfg: Config, conn: Connection) -> None:
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
    conn.commit()
