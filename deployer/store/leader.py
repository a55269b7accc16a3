"""One leader per fleet: a lease in the database that its holder renews before acting (the beat's,
tasks/beat.py).

A row of `leader_leases` names the holder and when its lead ends, in the database's own clock (hosts may
disagree on the time; the database is the one clock they share). The holder renews it at every tick, which
also answers whether it still leads: a renewal after the expiry fails, so a leader that stopped renewing
(SIGSTOP, a host frozen for minutes, a scheduler loop stuck in a call) stands down when it resumes instead of
sending beside its successor. A standby takes the lead once the lease has expired: within `lease_s` (plus
its poll) of the leader's last renewal, whether the leader died, hung or froze (issue 26 #14). The
PostgreSQL advisory lock and the flock this replaces were released only when the process ended, so a frozen
leader kept the lead, and every sweep stopped silently.

A leader that stops (SIGTERM) hands the lead over at once: release() expires its lease.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from sqlalchemy import Engine, text

from deployer.store.db import engine_for, normalise_url

log = logging.getLogger(__name__)

#: The database's clock in Unix seconds, per dialect.
NOW = {
    "postgresql": "EXTRACT(EPOCH FROM clock_timestamp())",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}


class LeaderLock:
    """try_acquire() while not leading; held() before acting as the leader (it renews); release() at exit."""

    def __init__(self, database_url: str, name: str = "beat", *, lease_s: float = 90.0) -> None:
        self.url = normalise_url(database_url)
        self.name = name
        self.lease_s = float(lease_s)
        self.holder = f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._engine: Engine | None = None

    @property
    def kind(self) -> str:
        return f"a {self.lease_s:g} s lease in the database"

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = engine_for(self.url)
        return self._engine

    def _now(self) -> str:
        return NOW.get(self.engine().dialect.name, NOW["sqlite"])

    def _write(self, sql: str) -> int:
        """Run one statement in its own transaction; the rows it changed (0 when the database is away)."""
        try:
            with self.engine().begin() as conn:
                return conn.execute(
                    text(sql), {"n": self.name, "h": self.holder, "ttl": self.lease_s}
                ).rowcount
        except Exception as exc:  # noqa: BLE001 - no database, no lead: try again at the next poll
            log.warning("%s: cannot reach the database for the lease (%s)", self.name, type(exc).__name__)
            return 0

    def try_acquire(self) -> bool:
        """Take the lead when nobody holds an unexpired lease (or this process already does)."""
        now = self._now()
        self._write(
            "INSERT INTO leader_leases (name, holder, expires_at) VALUES (:n, '', 0) ON CONFLICT (name) DO NOTHING"
        )
        return (
            self._write(
                f"UPDATE leader_leases SET holder = :h, expires_at = {now} + :ttl "
                f"WHERE name = :n AND (holder = :h OR expires_at < {now})"
            )
            == 1
        )

    def held(self) -> bool:
        """Renew the lease; False once it expired (even if nobody took it): this leader must stand down."""
        now = self._now()
        renewed = self._write(
            f"UPDATE leader_leases SET expires_at = {now} + :ttl "
            f"WHERE name = :n AND holder = :h AND expires_at >= {now}"
        )
        if not renewed:
            log.warning("%s: the lease expired or passed to another holder", self.name)
        return renewed == 1

    def release(self) -> None:
        self._write("UPDATE leader_leases SET expires_at = 0 WHERE name = :n AND holder = :h")
