"""The shared FC API rate limiter: GCRA in-process and in Redis, and its wiring into the gateway."""

from __future__ import annotations

import multiprocessing
import secrets
import socket
import threading
import time

import pytest

from deployer.errors import FCThrottled
from deployer.fc import ratelimit
from deployer.fc.gateway import FCGateway
from deployer.fc.ratelimit import LocalRateLimiter, RedisRateLimiter, max_calls_in_window
from deployer.settings import Settings
from tests.conftest import in_ci


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# -- in-process ----------------------------------------------------------------------------------------


def test_local_spaces_calls_at_the_rate():
    clock = FakeClock()
    limiter = LocalRateLimiter(10, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter()
    assert clock.slept == pytest.approx([0.1] * 4)


def test_local_burst_goes_at_once_then_at_the_rate():
    clock = FakeClock()
    limiter = LocalRateLimiter(10, burst=3, clock=clock, sleep=clock.sleep)
    waits = [limiter.reserve() for _ in range(5)]
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2])


def test_local_idle_time_refills_the_bucket_but_no_more_than_the_burst():
    clock = FakeClock()
    limiter = LocalRateLimiter(10, burst=2, clock=clock, sleep=clock.sleep)
    assert [limiter.reserve() for _ in range(3)] == pytest.approx([0, 0, 0.1])
    clock.now += 60  # a long pause saves up two calls, not 600
    assert [limiter.reserve() for _ in range(3)] == pytest.approx([0, 0, 0.1])


def test_local_refuses_a_wait_past_max_wait_without_booking_it():
    clock = FakeClock()
    limiter = LocalRateLimiter(2, max_wait_s=1.0, clock=clock, sleep=clock.sleep)
    assert [limiter.reserve() for _ in range(3)] == pytest.approx([0, 0.5, 1.0])
    with pytest.raises(FCThrottled) as info:
        limiter.reserve()
    assert info.value.retryable and info.value.retry_after == pytest.approx(1.5)
    assert info.value.code == "LocalRateLimit"
    clock.now += 1.5  # the refused call booked nothing: the next slot is still at +1.5
    assert limiter.reserve() == pytest.approx(0)


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        LocalRateLimiter(0)


def test_local_is_shared_by_threads_and_never_exceeds_the_rate():
    limiter = LocalRateLimiter(40, max_wait_s=10)
    stamps: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(10):
            limiter()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(6)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(stamps) == 60
    assert time.monotonic() - started >= 59 / 40 - 0.05
    assert max_calls_in_window(stamps, 1.0) <= 40 + 1  # +1: the sleep's wake-up jitter


def test_max_calls_in_window():
    assert max_calls_in_window([]) == 0
    assert max_calls_in_window([0, 0.5, 0.99, 1.0, 1.5]) == 3
    assert max_calls_in_window([0, 0.1, 0.2, 5], window_s=0.15) == 2


# -- settings and wiring -------------------------------------------------------------------------------


def test_from_settings(tmp_path):
    assert ratelimit.from_settings(Settings(data_dir=tmp_path)) is None
    local = ratelimit.from_settings(Settings(data_dir=tmp_path, fc_rate_limit_per_s=5, fc_rate_limit_burst=2))
    assert isinstance(local, LocalRateLimiter) and local.rate == pytest.approx(5 * ratelimit.PACE)
    assert local.tolerance == pytest.approx(1 / (5 * ratelimit.PACE))  # one call above the pace
    shared = ratelimit.from_settings(
        Settings(
            data_dir=tmp_path,
            fc_rate_limit_per_s=5,
            broker_url="redis://127.0.0.1:6379/3",
            fc_endpoint="http://127.0.0.1:8931",
            region="cn-beijing",
        )
    )
    assert isinstance(shared, RedisRateLimiter)
    assert shared.key == "mcpfc:fc-rate:127.0.0.1:8931:cn-beijing"


def test_redis_url_choice(tmp_path):
    s = Settings(data_dir=tmp_path, broker_url="amqp://guest@localhost//", result_backend="redis://r:6379/1")
    assert ratelimit.redis_url_for(s) == "redis://r:6379/1"
    s = Settings(data_dir=tmp_path, broker_url="redis://b:6379/0", fc_rate_limit_redis_url="redis://x:6379/2")
    assert ratelimit.redis_url_for(s) == "redis://x:6379/2"
    assert ratelimit.redis_url_for(Settings(data_dir=tmp_path)) is None


def test_gateway_from_settings_builds_the_limiter(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "ak")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "sk")
    base = {"data_dir": tmp_path, "fc_endpoint": "http://127.0.0.1:1"}
    assert FCGateway.from_settings(Settings(**base)).rate_limiter is None
    gw = FCGateway.from_settings(Settings(**base, fc_rate_limit_per_s=3))
    assert isinstance(gw.rate_limiter, LocalRateLimiter)
    mine = LocalRateLimiter(1)
    assert (
        FCGateway.from_settings(Settings(**base, fc_rate_limit_per_s=3), rate_limiter=mine).rate_limiter
        is mine
    )


def test_gateway_turns_a_refused_slot_into_a_retried_throttle(fc):
    """The limiter's FCThrottled goes through the gateway's retry loop like FC's own 429."""
    from alibabacloud_fc20230330 import models as fc_models

    from deployer.fc.gateway import make_client

    settings = Settings(fc_endpoint=fc.url)
    calls: list[int] = []

    def limiter() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise FCThrottled("busy", retry_after=0.01)

    gw = FCGateway(make_client(settings), rate_limiter=limiter, backoff_initial_s=0.01, sleep=lambda s: None)
    with pytest.raises(Exception) as info:  # the function does not exist: NotFound after two throttles
        gw._call("GetFunction", gw.client.get_function, "nope", fc_models.GetFunctionRequest())
    assert len(calls) == 3 and type(info.value).__name__ == "FCNotFound"


# -- Redis (integration: the real server) ------------------------------------------------------------


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_key():
    if not _redis_up():
        if in_ci():
            pytest.fail("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=0)
    key = f"mcpfc:test-rate:{secrets.token_hex(6)}"
    yield client, key
    client.delete(key)
    client.close()


def _worker_process(key: str, rate: float, calls: int, threads: int, out: multiprocessing.Queue) -> None:
    import redis

    limiter = RedisRateLimiter(redis.Redis(host="127.0.0.1", port=6379, db=0), key, rate, max_wait_s=30)
    stamps: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        # The slot the shared bucket booked (the middle of the reserve round trip plus the wait), not the
        # moment the sleep ended: on a loaded host wake-ups are late by varying amounts and bunch up.
        for _ in range(calls):
            before = time.time()
            wait = limiter.reserve()
            booked = (before + time.time()) / 2 + wait
            time.sleep(wait)
            with lock:
                stamps.append(booked)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    out.put(stamps)


@pytest.mark.integration
def test_redis_bucket_is_shared_by_processes(redis_key):
    _, key = redis_key
    rate, procs, threads, calls = 30.0, 3, 3, 7  # 63 calls: about 2 s at 30/s
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    workers = [
        ctx.Process(target=_worker_process, args=(key, rate, calls, threads, out)) for _ in range(procs)
    ]
    for w in workers:
        w.start()
    stamps: list[float] = []
    for _ in workers:
        stamps += out.get(timeout=60)
    for w in workers:
        w.join(10)
    assert len(stamps) == procs * threads * calls
    span = max(stamps) - min(stamps)
    assert span >= (len(stamps) - 1) / rate - 0.1, "the processes did not share one bucket"
    assert max_calls_in_window(stamps, 1.0) <= rate + 1


@pytest.mark.integration
def test_redis_refuses_past_max_wait_and_expires_the_key(redis_key):
    client, key = redis_key
    limiter = RedisRateLimiter(client, key, 2, max_wait_s=1.0)
    assert [round(limiter.reserve(), 1) for _ in range(3)] == [0.0, 0.5, 1.0]
    with pytest.raises(FCThrottled) as info:
        limiter.reserve()
    assert 1.3 < info.value.retry_after <= 1.5
    ttl = client.pttl(key)
    assert 0 < ttl <= 3000  # the bucket disappears once idle


@pytest.mark.integration
def test_redis_burst(redis_key):
    client, key = redis_key
    limiter = RedisRateLimiter(client, key, 2, burst=3, max_wait_s=5)
    calls = []  # (before, wait, after) on this clock; Redis books each slot somewhere between before and after
    for _ in range(5):
        before = time.monotonic()
        wait = limiter.reserve()
        calls.append((before, wait, time.monotonic()))
    assert [wait for _, wait, _ in calls[:3]] == [0, 0, 0]
    # The 4th and 5th slots are 0.5 s and 1 s after the burst began (during the first call), whatever time the
    # calls themselves took: the interval each slot can lie in must overlap the interval the rule allows.
    origin_lo, origin_hi = calls[0][0], calls[0][2]
    for (before, wait, after), offset in zip(calls[3:], (0.5, 1.0), strict=True):
        assert before + wait <= origin_hi + offset + 0.02, (calls, offset)
        assert after + wait >= origin_lo + offset - 0.02, (calls, offset)


def test_redis_down_falls_back_to_an_in_process_bucket():
    import redis

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    limiter = RedisRateLimiter(client, "k", 10, max_wait_s=5)
    waits = [limiter.reserve() for _ in range(3)]
    assert waits == pytest.approx([0, 0.1, 0.2], abs=0.02)
