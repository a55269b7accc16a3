"""A read cache for `GET /v1/deployments/{id}`, kept exact by PostgreSQL's change feed.

Migration 0003 makes PostgreSQL send `d:<deployment id>` or `k:<api key id>` on the channel
`mcpfc_changes` whenever a row of deployments or api_keys is written, by anyone (API, workers,
recovery, the CLI), when the write commits. `ChangeFeed` is one thread per API process that LISTENs on
its own connection and evicts by id: a deployment's rendered document on `d:`, every cached API key on
`k:` (keys change rarely). The process's own commits evict at once too (`deployer.store.db.note_change`), so a
client reads its own writes without waiting for the feed.

Rules that keep it exact:
- The cache answers only while the feed is listening. A lost listener connection empties it, and it stays
  bypassed until LISTEN is back (every read then goes to the database).
- A reader takes a generation `token()` before it reads the database, and its `put` is refused if the id
  (or, for keys, any key) was evicted since, or the cache was emptied since: a row read before a change
  never lands in the cache after that change's eviction.
- Entries live at most `ttl_s` (a backstop, should a notification ever be lost) and there are at most
  `max_entries` documents and as many keys (least recently used go first).

API keys are cached by the SHA-256 of the presented key, never the key itself; negative answers are not
cached. Without PostgreSQL (SQLite, the embedded default) there is no feed and no cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.engine import make_url

from deployer.store import db
from schemas import TERMINAL, Deployment

log = logging.getLogger("deployer.api")

CHANNEL = "mcpfc_changes"  # the channel of migration 0003's triggers

_DOCUMENT = TypeAdapter(Deployment)


def render(dep: Deployment) -> bytes:
    """The body FastAPI sends for `response_model=Deployment` (its fast path: pydantic's dump_json of the
    validated value, by alias). tests/api/test_read_cache.py checks the bytes against a real route."""
    return _DOCUMENT.dump_json(dep, by_alias=True)


@dataclass(frozen=True, slots=True)
class View:
    """One deployment as GET answers it: the rendered body and what the route needs to check around it."""

    id: str
    owner_id: str
    body: bytes
    etag: str
    terminal: bool
    # What a long poll answers on: a change a watcher can see. Internal writes (checkpoints, re-schedule
    # times, results recorded ahead of the next stage) move the row's updated_at but not this.
    watched: tuple[Any, ...]

    @classmethod
    def of(cls, dep: Deployment, owner_id: str) -> View:
        body = render(dep)
        return cls(
            id=dep.id,
            owner_id=owner_id,
            body=body,
            # Strong validator from the bytes themselves: equal bodies, equal tags (across API replicas too).
            etag='"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"',
            terminal=dep.status in TERMINAL,
            watched=(dep.status, dep.stage, dep.progress, dep.error, dep.urls),
        )


def key_digest(presented: str) -> bytes:
    return hashlib.sha256(presented.encode()).digest()


class _Waiter:
    """A long-poll waiting for a change of one deployment (set from any thread)."""

    __slots__ = ("event", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def wake(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # pragma: no cover - its loop is closed: nobody is waiting any more
            pass


class HotCache:
    """Rendered deployment documents by id and API key owners by key digest; see the module docstring."""

    def __init__(
        self, *, ttl_s: float = 30.0, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ):
        self.ttl_s = ttl_s
        self.max_entries = max(1, max_entries)
        self._clock = clock
        self._lock = threading.Lock()
        self._docs: OrderedDict[str, tuple[View, float]] = OrderedDict()
        self._keys: OrderedDict[bytes, tuple[Any, float]] = OrderedDict()
        self._gen = 0  # bumped by every eviction
        # Fills with an older token are refused: set when emptied, when listening starts, when tombstones go.
        self._floor = 0
        self._evicted: OrderedDict[str, int] = OrderedDict()  # id -> generation of its last eviction
        self._keys_evicted = 0  # generation of the last key eviction
        self._listening = False
        self._waiters: dict[str, set[_Waiter]] = {}
        self.hits = 0
        self.misses = 0
        _LIVE.add(self)

    # -- state ------------------------------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        return self._listening

    def set_listening(self, listening: bool) -> None:
        """The feed calls this when LISTEN is in place (True) or its connection is gone (False). Either way
        the cache starts empty, and no read begun before the switch may fill it."""
        with self._lock:
            self._listening = listening
            self._empty()
            waiters = self._take_waiters(None)
        for w in waiters:
            w.wake()

    def token(self) -> int:
        """Take before reading the database; pass to put / put_owner."""
        return self._gen

    def __len__(self) -> int:
        return len(self._docs)

    # -- deployments ------------------------------------------------------------------------------------

    def get(self, dep_id: str) -> View | None:
        if not self._listening:
            return None
        now = self._clock()
        with self._lock:
            item = self._docs.get(dep_id)
            if item is None:
                self.misses += 1
                return None
            if item[1] <= now:
                del self._docs[dep_id]
                self.misses += 1
                return None
            self._docs.move_to_end(dep_id)
            self.hits += 1
            return item[0]

    def put(self, view: View, token: int) -> bool:
        with self._lock:
            if not self._listening or token < self._floor or token < self._evicted.get(view.id, 0):
                return False
            self._docs[view.id] = (view, self._clock() + self.ttl_s)
            self._docs.move_to_end(view.id)
            while len(self._docs) > self.max_entries:
                self._docs.popitem(last=False)
            return True

    def evict(self, dep_id: str) -> None:
        with self._lock:
            self._gen += 1
            self._docs.pop(dep_id, None)
            self._evicted[dep_id] = self._gen
            self._evicted.move_to_end(dep_id)
            while len(self._evicted) > 4 * self.max_entries:
                _, gen = self._evicted.popitem(last=False)
                self._floor = max(self._floor, gen)  # forgotten ids: refuse every fill older than this
            waiters = self._take_waiters(dep_id)
        for w in waiters:
            w.wake()

    def changed_since(self, dep_id: str, token: int) -> bool:
        """Whether `dep_id` may have changed since `token` was taken (evicted, emptied, or no feed)."""
        with self._lock:
            return not self._listening or token < self._floor or token < self._evicted.get(dep_id, 0)

    # -- API keys ---------------------------------------------------------------------------------------

    def owner(self, presented: str) -> Any | None:
        if not self._listening:
            return None
        digest = key_digest(presented)
        now = self._clock()
        with self._lock:
            item = self._keys.get(digest)
            if item is None:
                return None
            if item[1] <= now:
                del self._keys[digest]
                return None
            self._keys.move_to_end(digest)
            return item[0]

    def put_owner(self, presented: str, owner: Any, token: int) -> bool:
        digest = key_digest(presented)
        with self._lock:
            if not self._listening or token < self._floor or token < self._keys_evicted:
                return False
            self._keys[digest] = (owner, self._clock() + self.ttl_s)
            self._keys.move_to_end(digest)
            while len(self._keys) > self.max_entries:
                self._keys.popitem(last=False)
            return True

    def evict_keys(self) -> None:
        with self._lock:
            self._gen += 1
            self._keys_evicted = self._gen
            self._keys.clear()

    # -- the feed ---------------------------------------------------------------------------------------

    def apply(self, payload: str) -> None:
        """One notification: `d:<deployment id>` or `k:<api key id>`; anything else empties the cache."""
        kind, _, ident = payload.partition(":")
        if kind == "d" and ident:
            self.evict(ident)
        elif kind == "k":
            self.evict_keys()
        else:
            log.warning("unexpected change notification %r: emptying the read cache", payload[:80])
            self.clear()

    def clear(self) -> None:
        with self._lock:
            self._empty()
            waiters = self._take_waiters(None)
        for w in waiters:
            w.wake()

    def _empty(self) -> None:  # under the lock
        self._gen += 1
        self._floor = self._gen
        self._keys_evicted = self._gen
        self._docs.clear()
        self._keys.clear()
        self._evicted.clear()

    # -- long-polls -------------------------------------------------------------------------------------

    def subscribe(self, dep_id: str) -> _Waiter:
        """A waiter woken by the next eviction of `dep_id` (or when the cache is emptied). Call from the
        event loop; always `unsubscribe` it."""
        waiter = _Waiter()
        with self._lock:
            self._waiters.setdefault(dep_id, set()).add(waiter)
        return waiter

    def unsubscribe(self, dep_id: str, waiter: _Waiter) -> None:
        with self._lock:
            waiters = self._waiters.get(dep_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[dep_id]

    def _take_waiters(self, dep_id: str | None) -> list[_Waiter]:  # under the lock
        if dep_id is None:
            out = [w for ws in self._waiters.values() for w in ws]
            self._waiters.clear()
            return out
        return list(self._waiters.pop(dep_id, ()))


# Every live cache of this process, for the evictions of its own commits (deployer.store.db.note_change).
_LIVE: weakref.WeakSet[HotCache] = weakref.WeakSet()


def _evict_local(changes: Iterable[str]) -> None:
    for cache in list(_LIVE):
        for payload in changes:
            cache.apply(payload)


db.on_local_commit(_evict_local)


class ChangeFeed:
    """One thread: LISTEN on its own autocommit connection and evict what the notifications name.

    Connection loss (or any error) empties the cache and switches it off; the thread reconnects with
    exponential backoff and jitter (0.1 s doubling up to `retry_max_s`) and switches it on once LISTEN is
    back. An idle connection is checked with `SELECT 1` every `ping_s` (TCP keepalives catch a dead peer
    under a blocked read). The database URL is never logged: it may hold a password.
    """

    def __init__(
        self,
        database_url: str,
        cache: HotCache,
        *,
        poll_s: float = 0.5,
        ping_s: float = 10.0,
        retry_max_s: float = 5.0,
    ) -> None:
        url = make_url(db.normalise_url(database_url)).set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self.cache = cache
        self.poll_s = poll_s
        self.ping_s = ping_s
        self.retry_max_s = retry_max_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mcpfc-change-feed", daemon=True)
        self.connects = 0  # times LISTEN was set up
        self.losses = 0  # times a listening connection was lost
        self.backend_pid: int | None = None

    def start(self) -> ChangeFeed:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.cache.set_listening(False)

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=5,
            application_name="mcpfc-change-feed",
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            listening = False
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    self.cache.set_listening(True)
                    listening = True
                    self.connects += 1
                    failures = 0
                    if self.connects > 1:
                        log.info("change feed listening again; the read cache is back on")
                    self._listen(conn)
            except Exception as exc:  # noqa: BLE001 - any failure: the cache must not answer without the feed
                failures += 1
                self.cache.set_listening(False)
                if listening:
                    self.losses += 1
                    log.warning(
                        "change feed lost (%s); the read cache is off until it reconnects", type(exc).__name__
                    )
                elif failures in (1, 10) or failures % 100 == 0:
                    log.warning(
                        "change feed cannot connect (%s, attempt %d); retrying", type(exc).__name__, failures
                    )
            finally:
                self.backend_pid = None
            if failures:
                delay = min(self.retry_max_s, 0.1 * 2 ** min(failures - 1, 16))
                self._stop.wait(delay * random.uniform(0.5, 1.0))

    def _listen(self, conn: Any) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            for note in conn.notifies(timeout=self.poll_s):
                self.cache.apply(note.payload)
                last = time.monotonic()
            if time.monotonic() - last >= self.ping_s:
                conn.execute("SELECT 1")
                last = time.monotonic()
