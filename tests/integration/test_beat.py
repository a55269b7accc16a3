"""Two beats at once do not double the periodic work: one leads, the other stands by and takes over when
the first dies (issue 15 #1).

Real processes: a Celery worker consuming the `health` queue and two beats (`mcp-fc beat` and `celery -A
tasks beat`) on one store, the embedded SQLite and PostgreSQL (a lease in the database). Each executed
health sweep leaves a row in the Celery result table with the beat that sent it (its `origin`); the test
counts those rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from deployer.celery_app import HEALTH_SWEEP_TASK, make_celery
from deployer.settings import Settings
from deployer.store.db import normalise_url
from deployer.store.migrate import upgrade
from tests.conftest import wait_until
from tests.integration.conftest import REPO

INTERVAL_S = 0.5
LEASE_S = 3.0
MCP_FC = str(Path(sys.executable).parent / "mcp-fc")


class Fleet:
    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.data_dir = data_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCPFC_")}
        env.update(
            MCPFC_DATA_DIR=str(data_dir),
            MCPFC_HEALTH_INTERVAL_S=str(INTERVAL_S),
            MCPFC_BEAT_STANDBY_POLL_S="0.2",
            MCPFC_BEAT_MAX_LOOP_S="1",
            MCPFC_BEAT_LEASE_S=str(LEASE_S),
            PYTHONPATH=str(REPO),
        )
        if database_url:
            env["MCPFC_DATABASE_URL"] = database_url
        self.env = env
        self.settings = Settings(data_dir=data_dir, database_url=database_url)
        upgrade(self.settings.effective_database_url)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.celery = make_celery(self.settings)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.data_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def runs(self) -> list[tuple[datetime, str]]:
        """(done at, sending beat's origin) of every executed sweep, oldest first."""
        url = normalise_url(self.settings.effective_database_url)
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                ids = [
                    r[0]
                    for r in conn.execute(
                        text("SELECT task_id FROM celery_taskmeta WHERE name = :n AND status = 'SUCCESS'"),
                        {"n": HEALTH_SWEEP_TASK},
                    )
                ]
        except Exception:  # noqa: BLE001 - the worker creates the table with its first result
            return []
        finally:
            engine.dispose()
        out = []
        for task_id in ids:
            meta = self.celery.backend.get_task_meta(task_id)
            out.append((meta["date_done"].replace(tzinfo=UTC), meta["result"]["sent_by"]))
        return sorted(out)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def origin(proc: subprocess.Popen[bytes]) -> str:
    return f"gen{proc.pid}@{os.uname().nodename}"


@pytest.fixture(params=["sqlite", "postgresql"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    fleet = Fleet(tmp_path, database_url)
    yield fleet
    fleet.stop()


@pytest.mark.timeout(240)
def test_two_beats_send_each_run_once_and_the_standby_takes_over(fleet: Fleet) -> None:
    python = sys.executable
    fleet.start(
        "worker",
        [python, "-m", "celery", "-A", "tasks", "worker", "--pool", "threads", "--concurrency", "2",
         "--queues", "health", "--hostname", f"beat-it-{os.getpid()}@%h", "--without-mingle",
         "--without-gossip", "--loglevel", "INFO"],
    )  # fmt: skip
    wait_until(lambda: " ready." in fleet.log("worker"), 60, what="worker ready")
    first = fleet.start("beat-a", [MCP_FC, "beat"])
    wait_until(lambda: "beat: leading" in fleet.log("beat-a"), 60, what="beat A leading")
    second = fleet.start("beat-b", [python, "-m", "celery", "-A", "tasks", "beat", "--loglevel", "INFO"])
    wait_until(lambda: "beat: standing by" in fleet.log("beat-b"), 60, what="beat B standing by")
    both_since = datetime.now(UTC)
    started = time.monotonic()

    # Both beats run; only A sends, one sweep per interval.
    wanted = 8
    wait_until(
        lambda: len([r for r in fleet.runs() if r[0] > both_since]) >= wanted,
        30,
        interval=0.1,
        what=f"{wanted} sweeps with both beats running",
    )
    elapsed = time.monotonic() - started
    assert first.poll() is None and second.poll() is None, "a beat exited"
    runs = [r for r in fleet.runs() if r[0] > both_since]
    senders = {sender for _, sender in runs}
    assert senders == {origin(first)}, (senders, origin(first), origin(second))
    # one beat sends at most elapsed/interval (+1 for the run in flight at the start), two would send twice
    assert len(runs) <= elapsed / INTERVAL_S + 2, (len(runs), elapsed)
    assert "beat: leading" not in fleet.log("beat-b")

    # A dies without a word (SIGKILL: no unlock); the database/kernel drops its lock, B leads.
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    killed_at = datetime.now(UTC)
    wait_until(
        lambda: len([r for r in fleet.runs() if r[0] > killed_at and r[1] == origin(second)]) >= 3,
        30,
        interval=0.1,
        what="sweeps sent by beat B after A died",
    )
    assert "beat: leading" in fleet.log("beat-b")
    late = [r for r in fleet.runs() if r[0] > killed_at and r[1] == origin(first)]
    assert len(late) <= 1, late  # at most the message A had sent just before it died


@pytest.mark.timeout(240)
def test_a_frozen_leader_loses_the_lead_and_stands_down_when_it_resumes(fleet: Fleet) -> None:
    """SIGSTOP keeps a process's database session (and an advisory lock, or an flock) forever: every sweep
    stopped (20 min observed). A leader that stops renewing its lease loses the lead within the lease; when
    it resumes it stands down instead of sending beside its successor (issue 26 #14)."""
    python = sys.executable
    fleet.start(
        "worker",
        [python, "-m", "celery", "-A", "tasks", "worker", "--pool", "threads", "--concurrency", "2",
         "--queues", "health", "--hostname", f"beat-frozen-{os.getpid()}@%h", "--without-mingle",
         "--without-gossip", "--loglevel", "INFO"],
    )  # fmt: skip
    wait_until(lambda: " ready." in fleet.log("worker"), 60, what="worker ready")
    first = fleet.start("beat-a", [MCP_FC, "beat"])
    wait_until(lambda: "beat: leading" in fleet.log("beat-a"), 60, what="beat A leading")
    second = fleet.start("beat-b", [MCP_FC, "beat"])
    wait_until(lambda: "beat: standing by" in fleet.log("beat-b"), 60, what="beat B standing by")

    first.send_signal(signal.SIGSTOP)
    try:
        frozen_at = datetime.now(UTC)
        # B leads once A's lease lapsed: within LEASE_S + a standby poll, stretched like every deadline
        wait_until(
            lambda: len([r for r in fleet.runs() if r[0] > frozen_at and r[1] == origin(second)]) >= 3,
            10 * LEASE_S,
            interval=0.1,
            what="sweeps sent by beat B while A is frozen",
        )
    finally:
        first.send_signal(signal.SIGCONT)
    resumed_at = datetime.now(UTC)
    wait_until(lambda: "beat: lost the lead" in fleet.log("beat-a"), 30, what="beat A stood down")
    wait_until(
        lambda: len([r for r in fleet.runs() if r[0] > resumed_at and r[1] == origin(second)]) >= 4,
        30,
        interval=0.1,
        what="B still sending after A resumed",
    )
    assert first.poll() is None and second.poll() is None, "a beat exited"
    late = [r for r in fleet.runs() if r[0] > frozen_at and r[1] == origin(first)]
    assert len(late) <= 1, late  # at most a message A had in flight when it froze
    assert "beat: leading" not in fleet.log("beat-a").split("beat: lost the lead", 1)[1]
