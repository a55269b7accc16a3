"""SQLAlchemy engine and sessions: SQLite (WAL) by default, PostgreSQL in production."""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from deployer.settings import Settings, get_settings


def normalise_url(url: str) -> str:
    """postgresql:// means psycopg 3 here (the only driver we install)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL lets the API read while a worker writes; busy_timeout rides out short write locks.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    # pool_pre_ping stays: it costs one loopback round trip per checkout (measured: ~2 % of an uncached
    # GET, 1.42 vs 1.46 ms), the cached GET checks out no connection at all, and it lets a pooled
    # connection that PostgreSQL dropped (restart, failover) be replaced instead of failing a request.
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine(settings: Settings | None = None) -> Engine:
    return engine_for((settings or get_settings()).effective_database_url)


@lru_cache(maxsize=8)
def _sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


@contextmanager
def session_scope(settings: Settings | None = None, *, engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error: on the settings' shared engine, or on
    `engine` (e.g. the recovery loop's NullPool engine, which a forked worker child never inherits)."""
    if engine is not None:
        factory: Callable[[], Session] = lambda: Session(engine, expire_on_commit=False)  # noqa: E731
    else:
        factory = _sessionmaker((settings or get_settings()).effective_database_url)
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# -- changes this process commits ------------------------------------------------------------------------
# PostgreSQL's change feed (migration 0003) tells every API process about every committed write, a few
# milliseconds later. A process's own writes are announced here as well, synchronously after the commit,
# so that a client reads its own writes at once (deployer/api/hot_cache.py listens).

_CHANGES = "mcpfc.changes"
_commit_hooks: list[Callable[[Iterable[str]], None]] = []


def note_change(session: Session, kind: str, ident: str) -> None:
    """Announce, once this session commits, that the row `ident` changed: kind "d" a deployment, "k" an
    API key (the payloads of the feed: "d:<id>", "k:<id>")."""
    session.info.setdefault(_CHANGES, set()).add(f"{kind}:{ident}")


def on_local_commit(hook: Callable[[Iterable[str]], None]) -> None:
    """Call hook(payloads) after every commit of a session that noted changes."""
    _commit_hooks.append(hook)


@event.listens_for(Session, "after_commit")
def _announce_changes(session: Session) -> None:
    changes = session.info.pop(_CHANGES, None)
    if changes:
        for hook in _commit_hooks:
            hook(changes)


@event.listens_for(Session, "after_rollback")
def _forget_changes(session: Session) -> None:
    session.info.pop(_CHANGES, None)
