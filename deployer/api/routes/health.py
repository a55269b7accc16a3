"""Liveness, readiness and Prometheus metrics. No authentication."""

from __future__ import annotations

import logging
import os
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from deployer.api.deps import ProducerDep, SettingsDep
from deployer.api.problems import ProblemDetail, problem_response
from deployer.store.db import engine_for

log = logging.getLogger("deployer.api")

router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["health"])  # included only when settings.metrics_enabled

BROKER_TIMEOUT_S = 2.0


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers. Touches neither the database nor the broker."""
    return {"status": "ok"}


def _check_database(url: str) -> str:
    try:
        with engine_for(url).connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        return "unreachable"


def _check_broker(settings: Any, producer: Any) -> str:
    if settings.effective_broker_url.startswith("filesystem://"):
        folders = [settings.broker_dir / sub for sub in ("queue", "processed", "control")]
        ok = all(f.is_dir() and os.access(f, os.W_OK) for f in folders)
        return "ok" if ok else "unreachable"
    try:
        with producer.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_S)
        return "ok"
    except Exception as exc:
        log.warning("readiness: broker unreachable: %s", type(exc).__name__)
        return "unreachable"


@router.get(
    "/readyz", responses={503: {"model": ProblemDetail, "description": "database or broker unreachable"}}
)
def readyz(request: Request, settings: SettingsDep, producer: ProducerDep) -> Response:
    """Readiness: the database answers `SELECT 1` and the broker accepts a connection."""
    checks = {
        "database": _check_database(settings.effective_database_url),
        "broker": _check_broker(settings, producer),
    }
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        return problem_response(
            503,
            instance=request.url.path,
            detail="not ready: " + ", ".join(f"{name} unreachable" for name in failed),
            extensions={"checks": checks},
        )
    return JSONResponse({"status": "ok", "checks": checks})


@metrics_router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)
