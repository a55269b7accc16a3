"""Prometheus metrics for the API: requests by route template and status, deploys queued, enqueue failures.

Each app owns its registry (several apps can live in one process, as in tests). Every label is bounded,
because a label value is memory held for the life of the process and anyone can send a request: routes
are path templates (`/v1/deployments/{id}`) or one `<unmatched>`, never raw paths; methods are the
standard ones or `other` (HTTP lets a client invent any method token: 20,000 invented methods once took
/metrics from 3.5 KB to 37 MB); status codes are what the app answers (100-599).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "<unmatched>"
OTHER_METHOD = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """The method as a label value: one of METHODS, else `other`."""
    return method if method in METHODS else OTHER_METHOD


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "other"


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mcpfc_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mcpfc_http_request_duration_seconds",
            "Time to answer an HTTP request (long-polls and event streams included), by route template.",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.deployments_created = Counter(
            "mcpfc_deployments_created", "New deployment rows written and queued.", registry=self.registry
        )
        self.tasks_queued = Counter(
            "mcpfc_tasks_queued",
            "Tasks sent to the broker, by operation.",
            ["operation"],
            registry=self.registry,
        )
        self.enqueue_failures = Counter(
            "mcpfc_enqueue_failures",
            "Tasks the broker refused or could not take, by operation.",
            ["operation"],
            registry=self.registry,
        )

    def watch_read_cache(self, get_cache: Callable[[], Any]) -> None:
        """Export the read cache's counters (deployer/api/hot_cache.py), read at scrape time."""
        self.registry.register(_ReadCacheCollector(get_cache))

    def watch_health(self, settings: Any) -> None:
        """Export the live deployments by health and their latest probe latency, read at scrape time."""
        self.registry.register(_HealthCollector(settings))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _ReadCacheCollector(Collector):
    def __init__(self, get_cache: Callable[[], Any]) -> None:
        self.get_cache = get_cache

    def collect(self) -> Iterator[Any]:
        cache = self.get_cache()
        listening = GaugeMetricFamily(
            "mcpfc_read_cache_listening",
            "1 while the change feed keeps the GET cache exact, else 0 (bypassed).",
        )
        listening.add_metric([], 1.0 if cache is not None and cache.listening else 0.0)
        yield listening
        lookups = CounterMetricFamily(
            "mcpfc_read_cache_lookups",
            "GET-by-id cache lookups while listening, by result.",
            labels=["result"],
        )
        lookups.add_metric(["hit"], float(cache.hits if cache is not None else 0))
        lookups.add_metric(["miss"], float(cache.misses if cache is not None else 0))
        yield lookups
        entries = GaugeMetricFamily("mcpfc_read_cache_entries", "Deployment documents in the GET cache.")
        entries.add_metric([], float(len(cache) if cache is not None else 0))
        yield entries


#: Buckets of the probe latency histogram (seconds): an MCP handshake on a warm instance takes tens of ms,
#: a cold start seconds, a dead server the whole health timeout.
PROBE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _HealthCollector(Collector):
    """Two grouped reads per scrape (deployer/store/health.py); nothing when the database does not answer."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def describe(self) -> Iterator[Any]:
        # without it the registry would call collect() (and the database) when the collector is registered
        yield GaugeMetricFamily("mcpfc_deployments_health", "", labels=["health"])
        yield HistogramMetricFamily("mcpfc_health_probe_latency_seconds", "")
        yield GaugeMetricFamily("mcpfc_deployments_tool_drift", "")

    def collect(self) -> Iterator[Any]:
        from deployer.store import health
        from deployer.store.db import session_scope

        try:
            with session_scope(self.settings) as session:
                by_health = health.counts(session)
                latencies = health.latencies_ms(session)
                drifted = health.tool_drift_count(session)
        except Exception:  # noqa: BLE001 - /metrics keeps answering while the database is down
            return
        gauge = GaugeMetricFamily(
            "mcpfc_deployments_health",
            "Live deployments by the health their scheduled MCP checks found (unknown: not checked yet).",
            labels=["health"],
        )
        for status, count in sorted(by_health.items()):
            gauge.add_metric([status], float(count))
        yield gauge
        buckets = []
        for bound in PROBE_BUCKETS:
            buckets.append((str(bound), float(sum(1 for ms in latencies if ms / 1000 <= bound))))
        buckets.append(("+Inf", float(len(latencies))))
        total = sum(latencies) / 1000
        hist = HistogramMetricFamily(
            "mcpfc_health_probe_latency_seconds",
            "The latest MCP health probe of each live deployment (connect, initialize, tools/list).",
        )
        hist.add_metric([], buckets, sum_value=total)
        yield hist
        drift = GaugeMetricFamily(
            "mcpfc_deployments_tool_drift",
            "Live deployments whose server lists other tools than their deploy recorded.",
        )
        drift.add_metric([], float(drifted))
        yield drift


class MetricsMiddleware:
    """Count and time every HTTP request; a dict lookup and two observations per request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def observing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = method_label(scope.get("method", ""))
            self.metrics.requests.labels(method, template, status_label(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
