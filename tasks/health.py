"""Scheduled MCP health checks: every live deployment re-probed through its own URL, with its own auth.

The beat sends `mcpfc.health.sweep` every `health_interval_s` (tasks/schedule.py). The sweep reads which
live deployments are due (two JSON fields per row, not the rows) and sends them out as batches of
`health_batch_size` ids (ids only: the batch task reads the URL and decrypts the token itself) on the
`health` queue, which no deploy waits in. A batch probes `health_concurrency` deployments at once, each
probe bounded by `health_timeout_s`.

Pacing: a probe is an MCP request to the deployment's trigger URL (FC's data plane, billed as an
invocation), not an FC API call, so it takes no token from the FC API bucket deploys need
(deployer/fc/ratelimit.py). It has a bucket of its own of the same kind (GCRA; in Redis when the fleet has
one, shared by every worker), `health_probe_rate_per_s`; a sweep also sends at most what that rate can
probe in one interval, the longest-unchecked first, so a backlog never builds up in the queue. A probe
whose slot is too far away is skipped this round (the deployment stays due for the next sweep).

The probe is the deploy's (deployer/ops/probe.py): the official MCP client's initialize + tools/list, so a
bridge that still answers HTTP (mcp-proxy's /status stays 200 after its stdio server died) but no longer
speaks MCP is unhealthy. A failure's text is scrubbed of the deployment's secret values (the server's
output may print its environment) before it is stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deployer import celery_app as queue
from deployer.crypto import Vault
from deployer.errors import DeployError, FCThrottled
from deployer.failure_text import scrub
from deployer.fc import ratelimit
from deployer.ops import releases, tool_drift
from deployer.settings import Settings, get_settings
from deployer.store import health
from deployer.store import reads as store
from deployer.store.db import session_scope
from deployer.store.result import DeploymentResult
from deployer.store.tables import DeploymentRow
from schemas import AuthType, Transport
from tasks.app import app

if TYPE_CHECKING:  # the MCP client costs ~1 s of imports: loaded at the first check (tasks/startup.py)
    from deployer.ops.probe import ProbeResult

log = logging.getLogger("tasks.health")

RATE_KEY_PREFIX = "mcpfc:health-rate"


_limiters: dict[tuple[float, int, float, str | None], ratelimit.RateLimiter | None] = {}


def _limiter(settings: Settings) -> ratelimit.RateLimiter | None:
    """One bucket per process and configuration (the Redis one is shared by every process)."""
    rate, burst, max_wait = (
        settings.health_probe_rate_per_s,
        settings.health_concurrency,
        settings.health_timeout_s,
    )
    url = ratelimit.redis_url_for(settings)
    key = (rate, burst, max_wait, url)
    if key not in _limiters:
        _limiters[key] = _make_limiter(settings, rate, burst, max_wait, url)
    return _limiters[key]


def _make_limiter(
    settings: Settings, rate: float, burst: int, max_wait: float, url: str | None
) -> ratelimit.RateLimiter | None:
    if rate <= 0:
        return None
    if url is None:
        return ratelimit.LocalRateLimiter(rate, burst=burst, max_wait_s=max_wait)
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    key = f"{RATE_KEY_PREFIX}:{ratelimit.bucket_key(settings).split(':', 2)[-1]}"
    return ratelimit.RedisRateLimiter(client, key, rate, burst=burst, max_wait_s=max_wait)


def _now() -> datetime:
    return datetime.now(UTC)


def sweep(settings: Settings) -> dict[str, Any]:
    """Send the due deployments out in batches; what it sent."""
    interval = settings.health_interval_s or 60.0
    limit = None
    if settings.health_probe_rate_per_s > 0:
        limit = max(settings.health_batch_size, int(settings.health_probe_rate_per_s * interval))
    with session_scope(settings) as session:
        ids = health.due(health.candidates(session), now=_now(), interval_s=interval, limit=limit)
    size = settings.health_batch_size
    batches = [ids[i : i + size] for i in range(0, len(ids), size)]
    for batch in batches:
        app.send_task(
            queue.HEALTH_BATCH_TASK, args=[batch], queue=queue.HEALTH_QUEUE, expires=max(1.0, interval)
        )
    return {"due": len(ids), "batches": len(batches)}


def _target(
    settings: Settings, row: DeploymentRow
) -> tuple[str | None, str, dict[str, str] | None, list[str]]:
    """(url, transport, headers, secret values) of a live deployment."""
    spec = row.spec or {}
    transport = str(spec.get("transport") or Transport.streamable_http.value)
    urls = row.urls or {}
    url = urls.get("sse") if transport == Transport.sse.value else urls.get("mcp")
    vault = Vault.from_settings(settings)
    headers = None
    auth = spec.get("auth") or {}
    if auth.get("type") == AuthType.jwt.value and row.endpoint_token_enc:
        headers = {"Authorization": f"Bearer {vault.decrypt(row.endpoint_token_enc)}"}
    secrets = [str(v) for v in (vault.decrypt_json(row.secret_env_enc) or {}).values()]  # type: ignore[union-attr]
    return url, transport, headers, secrets


def check_one(settings: Settings, deployment_id: str) -> str:
    """Probe one deployment and record its health; says what happened (for the batch's summary)."""
    with session_scope(settings) as session:
        row = store.get(session, deployment_id)
        # A failed or cancelled redeploy whose `live` still serves an earlier version is checked too: its
        # endpoint takes all the traffic (issue 26 #14).
        if row is None or not releases.endpoint_serves(row.status, row.result):
            return "skipped"
        session.expunge(row)
    prev = health.current(row)
    if prev is not None and prev.get("checked_at"):
        # a duplicate (a redelivered batch, a second sweep): checked recently enough already
        age = (_now() - datetime.fromisoformat(prev["checked_at"])).total_seconds()
        if age < settings.health_interval_s * 0.5:
            return "recent"
    url, transport, headers, secrets = _target(settings, row)
    if not url:
        return "skipped"
    limiter = _limiter(settings)
    if limiter is not None:
        try:
            limiter()
        except FCThrottled:
            return "throttled"
    started = time.perf_counter()
    found = None
    try:
        found = bounded_probe(url, transport, headers, settings.health_timeout_s)
        outcome = health.Outcome(ok=True, latency_ms=round((time.perf_counter() - started) * 1000))
    except Exception as exc:  # noqa: BLE001 - every failure is a failed check, with what came back
        text = scrub(str(exc), secrets)
        outcome = health.Outcome(
            ok=False, latency_ms=round((time.perf_counter() - started) * 1000), error=text
        )
    now = _now()
    new = health.next_health(
        prev, outcome, task_id=row.task_id, now=now, unhealthy_after=settings.health_unhealthy_after
    )
    messages = [health.change_message(prev, new)]
    extra: dict[str, Any] = {}
    if found is not None:
        drift, drift_message = _tool_drift(row, found, now)
        extra[tool_drift.DRIFT_KEY] = drift
        messages.append(drift_message)
    with session_scope(settings) as session:
        written = health.record(session, row, new, messages, **extra)
    if written and any(messages):
        log.info("health.changed", extra={"deployment_id": row.id, "health": new["status"]})
    return new["status"] if written else "superseded"


def _tool_drift(row: DeploymentRow, found: Any, now: datetime) -> tuple[dict[str, Any] | None, str | None]:
    """The tools the probe saw against the ones the deploy's probe recorded (result.probe)."""
    summary = found.summary() if hasattr(found, "summary") else None
    result = DeploymentResult.from_json(row.result)
    diff = tool_drift.compare(result.probe, summary)
    prev = result.finding(tool_drift.DRIFT_KEY, status=row.status, task_id=row.task_id)
    return tool_drift.next_drift(prev, diff, task_id=row.task_id, now=now)


def bounded_probe(url: str, transport: str, headers: dict[str, str] | None, timeout: float) -> ProbeResult:
    """The deploy's probe (both eras, one after the other, each with `timeout`) within `timeout` in all:
    a hung server must not hold a check for twice its limit."""

    from deployer.ops.probe import probe_async

    async def run() -> ProbeResult:
        return await asyncio.wait_for(
            probe_async(url, transport=transport, headers=headers, timeout=timeout), timeout
        )

    try:
        return asyncio.run(run())
    except TimeoutError:
        raise DeployError(
            f"MCP {transport} client at {url}: no answer to initialize / server/discover + tools/list "
            f"within {timeout:g} s",
            code="ProbeFailed",
            step="health",
        ) from None


def check_batch(settings: Settings, ids: list[str]) -> dict[str, int]:
    summary: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=settings.health_concurrency, thread_name_prefix="health") as pool:
        for outcome in pool.map(lambda i: _safe_check(settings, i), ids):
            summary[outcome] = summary.get(outcome, 0) + 1
    return summary


def _safe_check(settings: Settings, deployment_id: str) -> str:
    try:
        return check_one(settings, deployment_id)
    except Exception:  # noqa: BLE001 - one deployment's database error must not stop the batch
        log.warning("health.check_failed", extra={"deployment_id": deployment_id}, exc_info=True)
        return "error"


@app.task(name=queue.HEALTH_SWEEP_TASK, bind=True, acks_late=False, ignore_result=False)
def health_sweep(self: Any) -> dict[str, Any]:
    # acks_late off: a lost sweep is simply the next interval's; redelivering it would double it
    return {**sweep(get_settings()), "sent_by": self.request.origin}


@app.task(name=queue.HEALTH_BATCH_TASK, acks_late=False, ignore_result=True)
def health_batch(ids: list[str]) -> dict[str, int]:
    return check_batch(get_settings(), list(ids))
