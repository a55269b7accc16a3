"""The ASGI apps the benchmarks serve with uvicorn (`--factory`), each in a process of its own.

- ``service_app``: the real API, `create_app()` with settings from the environment (MCPFC_*).
- ``bare_app``: a bare FastAPI app whose one route returns a constant: the JSON document in the file
  named by BENCH_CONSTANT_FILE (the polling benchmark stores a real deployment there, so both apps send
  the same bytes), or a small dict.
"""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import FastAPI


def service_app() -> FastAPI:
    from deployer.api import create_app

    return create_app()


def bare_app() -> FastAPI:
    path = os.environ.get("BENCH_CONSTANT_FILE")
    constant: Any = json.loads(open(path).read()) if path else {"status": "succeeded"}  # noqa: SIM115
    app = FastAPI()

    @app.get("/v1/deployments/{id}")
    async def read(id: str) -> Any:
        return constant

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
