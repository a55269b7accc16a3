"""One leader per fleet: a lock a process holds for as long as it lives (the beat's, tasks/beat.py).

Where the lock lives follows the store, as the recovery sweep's does (tasks/recovery.py):

- PostgreSQL: a session-level advisory lock on a connection of its own. PostgreSQL drops it when the
  connection ends, so a beat that dies (even SIGKILLed, or its host gone) frees it for the standby without
  any expiry to tune. `held()` runs one `SELECT 1` on that connection: a connection that broke (and its
  lock with it) is noticed before the next send.
- SQLite (the embedded default, one machine): an exclusive `flock` on a file beside the database, which
  the kernel releases when the process ends.
- any other database: no lock (logged once); run a single beat there.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from deployer.store.db import normalise_url

log = logging.getLogger(__name__)

#: PostgreSQL advisory lock keys (arbitrary constants, fixed for every mcp-fc version).
KEYS = {"beat": 0x3C1B6E0F5A7D2292}


class LeaderLock:
    """try_acquire() once and again while not held; held() before acting as the leader; release() at exit."""

    def __init__(self, database_url: str, name: str = "beat") -> None:
        self.url = normalise_url(database_url)
        self.name = name
        self._conn: Any = None
        self._file: IO[str] | None = None
        self._unlocked_warned = False

    @property
    def kind(self) -> str:
        if self.url.startswith("postgresql"):
            return "postgresql advisory lock"
        if self._sqlite_path() is not None:
            return "flock"
        return "none"

    def _sqlite_path(self) -> Path | None:
        if self.url.startswith("sqlite") and "///" in self.url and not self.url.endswith(":memory:"):
            return Path(self.url.split("///", 1)[1] + f".{self.name}.lock")
        return None

    def try_acquire(self) -> bool:
        if self.url.startswith("postgresql"):
            return self._try_pg()
        path = self._sqlite_path()
        if path is not None:
            return self._try_flock(path)
        if not self._unlocked_warned:
            self._unlocked_warned = True
            log.warning("%s: no lock for %s; run only one of them", self.name, self.url.split(":", 1)[0])
        return True

    def held(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                self._conn.commit()
                return True
            except Exception:  # noqa: BLE001 - the session (and its lock) is gone
                log.warning("%s: lost the database session that held the lock", self.name)
                self._drop_conn()
                return False
        return self._file is not None or self.kind == "none"

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": KEYS[self.name]})
                self._conn.commit()
            except Exception:  # noqa: BLE001 - closing the session drops it anyway
                pass
            self._drop_conn()
        if self._file is not None:
            try:
                fcntl.flock(self._file, fcntl.LOCK_UN)
            finally:
                self._file.close()
                self._file = None

    def _try_pg(self) -> bool:
        if self._conn is not None:
            return self.held()
        try:
            engine = create_engine(self.url, poolclass=NullPool)
            conn = engine.connect()
        except Exception as exc:  # noqa: BLE001 - the database is down: try again at the next poll
            log.warning("%s: cannot reach the database for the lock (%s)", self.name, type(exc).__name__)
            return False
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": KEYS[self.name]}).scalar())
            conn.commit()
        except Exception:  # noqa: BLE001
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _drop_conn(self) -> None:
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001
            pass
        self._conn = None

    def _try_flock(self, path: Path) -> bool:
        if self._file is not None:
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - held for as long as this process leads
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return True
