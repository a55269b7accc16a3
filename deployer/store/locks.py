"""One lock across processes, for work that one process at a time should do (migrations, recovery sweeps).

On PostgreSQL it is a session-level advisory lock, held on a connection of its own for the block (yielded,
so the work can run on it) and dropped by PostgreSQL if the process dies. On a file-backed SQLite store
(one machine) it is an exclusive `flock` on a file beside the database. Elsewhere (an in-memory database,
other engines) there is nothing to share the database with a second process, or nothing to lock with:
the block runs unlocked and callers rely on their own compare-and-set writes.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, text


@dataclass
class Held:
    """What `exclusive` got: whether the lock is this process's, and (PostgreSQL) the connection holding it."""

    acquired: bool
    connection: Connection | None = None


def sqlite_file(engine: Engine) -> str | None:
    """The file of a SQLite engine, or None (another database, or in memory)."""
    if engine.dialect.name != "sqlite":
        return None
    path = engine.url.database
    return path if path and path != ":memory:" else None


@contextmanager
def exclusive(engine: Engine, *, key: int, name: str, wait: bool = True) -> Iterator[Held]:
    """Hold lock `key` (PostgreSQL) or `<database file>.<name>.lock` (SQLite) for the block. With
    wait=False a lock another process holds is not waited for: the block runs with acquired=False."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            if wait:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                got = True
            else:
                got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()  # the lock is the session's: no transaction stays open while the block works
            try:
                yield Held(got, conn)
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        return
    path = sqlite_file(engine)
    if path is None:
        yield Held(True)
        return
    lock = Path(f"{path}.{name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield Held(False)
            return
        try:
            yield Held(True)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
