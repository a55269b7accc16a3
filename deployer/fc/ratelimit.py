"""One FC API rate for every worker: a GCRA token bucket in Redis, shared by all processes and hosts.

The gateway calls the limiter before every FC call (each retry attempt included). A call asks the bucket
for the next free slot and sleeps until then, so calls leave in order and, with the default burst of 1,
never faster than ``PACE`` x ``rate`` per second over any window (GCRA, the generic cell rate algorithm: one stored
number per bucket, the "theoretical arrival time"). A call whose slot is more than ``max_wait_s`` away
does not wait: it raises :class:`FCThrottled`, which the gateway retries with backoff and a task turns
into a re-schedule, so a long backlog never pins worker slots.

Where the bucket lives:

- ``fc_rate_limit_redis_url``, else the broker's URL, else the result backend's, when one is ``redis://``:
  one atomic Lua script per call (Redis's own clock, so hosts need not agree on the time). The key is per
  FC endpoint (account and region), so services that share an account share its rate.
- otherwise (the embedded default): an in-process bucket, shared by the threads of one worker process
  (``mcp-fc dev`` runs one threads-pool worker). Several worker processes each get the whole rate.

If Redis stops answering, each process falls back to an in-process bucket at the same rate (logged), so
a Redis outage degrades the limit instead of stopping deploys; Redis is used again once it answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from deployer.errors import FCThrottled
from deployer.settings import Settings

log = logging.getLogger(__name__)

KEY_PREFIX = "mcpfc:fc-rate"

# KEYS[1] bucket; ARGV: interval µs, tolerance µs ((burst-1) * interval), max wait µs.
# Returns the wait in µs (>= 0) after reserving a slot, or -(wait) + -1 when the wait is over the limit
# (nothing reserved).
GCRA_LUA = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if wait > max_wait then return -1 - math.floor(wait) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return math.floor(wait)
"""


class RateLimiter(Protocol):
    def __call__(self) -> None: ...


def _throttled(wait_s: float, rate: float, where: str) -> FCThrottled:
    return FCThrottled(
        f"the FC API rate limit ({rate:g}/s, {where}) has no free slot for {wait_s:.1f} s",
        code="LocalRateLimit",
        retry_after=wait_s,
    )


class LocalRateLimiter:
    """GCRA in one process, thread-safe. ``reserve()`` books the next slot and says how long to wait."""

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        max_wait_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = float(rate)
        self.interval = 1.0 / self.rate
        self.tolerance = (max(1, int(burst)) - 1) * self.interval
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep
        self._tat = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            wait = max(0.0, tat - self.tolerance - now)
            if wait > self.max_wait_s:
                raise _throttled(wait, self.rate, "in-process")
            self._tat = tat + self.interval
            return wait

    def __call__(self) -> None:
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)


class RedisRateLimiter:
    """GCRA in Redis: one bucket for every process and host that uses the same Redis and key."""

    def __init__(
        self,
        redis_client: Any,
        key: str,
        rate: float,
        *,
        burst: int = 1,
        max_wait_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        fallback: LocalRateLimiter | None = None,
        retry_redis_after_s: float = 5.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.redis = redis_client
        self.key = key
        self.rate = float(rate)
        self.interval_us = round(1_000_000 / self.rate)
        self.tolerance_us = (max(1, int(burst)) - 1) * self.interval_us
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._script = redis_client.register_script(GCRA_LUA)
        self.fallback = fallback or LocalRateLimiter(rate, burst=burst, max_wait_s=max_wait_s, sleep=sleep)
        self.retry_redis_after_s = retry_redis_after_s
        self._redis_down_until = 0.0

    def reserve(self) -> float:
        """Seconds to wait before the call (the slot is booked); raises FCThrottled when too far away."""
        if time.monotonic() < self._redis_down_until:
            return self.fallback.reserve()
        try:
            answer = int(
                self._script(
                    keys=[self.key],
                    args=[self.interval_us, self.tolerance_us, int(self.max_wait_s * 1_000_000)],
                )
            )
        except Exception as exc:  # noqa: BLE001 - redis-py raises RedisError and OSError subclasses
            if self._redis_down_until == 0.0 or time.monotonic() >= self._redis_down_until:
                log.warning(
                    "FC rate limiter: Redis unavailable (%s); using an in-process bucket for %.0f s",
                    type(exc).__name__,
                    self.retry_redis_after_s,
                )
            self._redis_down_until = time.monotonic() + self.retry_redis_after_s
            return self.fallback.reserve()
        if answer < 0:
            raise _throttled((-answer - 1) / 1_000_000, self.rate, "shared")
        return answer / 1_000_000

    def __call__(self) -> None:
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)


def redis_url_for(settings: Settings) -> str | None:
    """The Redis the shared bucket lives in: explicit, else the broker's, else the result backend's."""
    for url in (settings.fc_rate_limit_redis_url, settings.broker_url, settings.result_backend):
        if url and url.startswith(("redis://", "rediss://", "unix://")):
            return url
    return None


def bucket_key(settings: Settings, region: str | None = None) -> str:
    """One bucket per FC account and region (what FC's own API limits are counted against)."""
    region = region or settings.region
    where = settings.fc_endpoint or settings.fc_account_id or "default"
    where = where.replace("{region}", region).split("://", 1)[-1].rstrip("/")
    return f"{KEY_PREFIX}:{where}:{region}"


# The bucket paces calls at 95 % of the configured rate. A call leaves the worker at its slot but reaches
# FC after a transit that varies (thread scheduling, the GIL, the network), so exact 1/R spacing at the
# worker still let 61-63 calls land in some 1 s windows at FC for R = 60 (burst benchmark, loopback).
# FC counts arrivals; the headroom keeps them under R.
PACE = 0.95


def from_settings(settings: Settings, region: str | None = None) -> RateLimiter | None:
    """The limiter the settings ask for, for one region (default settings.region), pacing at PACE x the
    rate; None when ``fc_rate_limit_per_s`` is 0."""
    if not settings.fc_rate_limit_per_s or settings.fc_rate_limit_per_s <= 0:
        return None
    rate = settings.fc_rate_limit_per_s * PACE
    burst = settings.fc_rate_limit_burst
    max_wait = settings.fc_rate_limit_max_wait_s
    url = redis_url_for(settings)
    if url is None:
        return LocalRateLimiter(rate, burst=burst, max_wait_s=max_wait)
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return RedisRateLimiter(client, bucket_key(settings, region), rate, burst=burst, max_wait_s=max_wait)


def max_calls_in_window(times: list[float], window_s: float = 1.0) -> int:
    """The most timestamps in any window (t - window_s, t] (used by tests and benchmarks)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


__all__ = [
    "GCRA_LUA",
    "PACE",
    "LocalRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "bucket_key",
    "from_settings",
    "max_calls_in_window",
    "redis_url_for",
]
