"""Processes that import the Celery app but never probe (beat, workers with probing off) skip the MCP client's
~1 s of imports; a worker that verifies deploys loads it once at start-up, before a prefork pool forks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


WATCHED = ("mcp", "deployer.ops.probe")


def loaded_after(code: str, **env: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(*(m for m in {WATCHED!r} if m in sys.modules))"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return set(out)


def test_the_celery_app_does_not_load_the_mcp_client() -> None:
    assert loaded_after("import tasks") == set()


def test_a_probing_worker_loads_it_at_start_up_and_one_that_does_not_probe_never_does(tmp_path: Path) -> None:
    code = "from tasks.startup import migrate_on_start\nmigrate_on_start()"
    db = f"sqlite:///{tmp_path}/w.db"  # a fresh database: start-up migrates it first
    assert loaded_after(code, MCPFC_DATABASE_URL=db, MCPFC_PROBE_ENABLED="true") == {
        "mcp",
        "deployer.ops.probe",
    }
    assert loaded_after(code, MCPFC_DATABASE_URL=db, MCPFC_PROBE_ENABLED="false") == set()
