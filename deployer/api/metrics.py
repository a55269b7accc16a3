"""Prometheus metrics for the API: requests by route template and status, deploys queued, enqueue failures.

Each app owns its registry (several apps can live in one process, as in tests). Route labels are the
path templates (`/v1/deployments/{id}`), never raw paths, so cardinality stays bounded.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "<unmatched>"


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

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


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
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
