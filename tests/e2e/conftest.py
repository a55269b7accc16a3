"""Stacks the e2e modules share (issue 22 #4): one per run instead of one per module.

- `stack`: the plain stack (real API, one threaded worker, the emulator, the MCP probe on) for every module
  that needs nothing special. Session-scoped; between two tests the emulator's function instances stop and
  its runtime settings and fault rules go back to their defaults, after every deployment the test started
  has ended, so one test's servers neither run nor hold the worker in the next one. Deployments stay (each
  module's names are its own, and FC keeps their functions, so a drift sweep finds them in sync).
- `beat_stack`: a stack with a running `mcp-fc beat` and a 2 s health interval, for the health-check and
  tool-drift modules. One per module, not per run: its beat health-checks every live deployment every 2 s,
  which would tax every later test of the run on that worker.

A module whose stack needs settings of its own (token expiry's TTLs) or that starts and stops whole stacks
(integration, reliability) keeps `stack_factory`.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from deployer.store.db import session_scope
from deployer.store.tables import DeploymentRow
from schemas import TERMINAL
from tests.conftest import TIMEOUT_SCALE, wait_until
from tests.integration.conftest import REPO, Stack, Stacks

MCP_FC = str(Path(sys.executable).parent / "mcp-fc")

# The beat stack's health checks: every 2 s, each probe given at most 5 s.
HEALTH_INTERVAL_S = 2.0
HEALTH_PROBE_TIMEOUT_S = 5.0
# FC's own check of the bridge (every 2 s) replaces an instance after this many failures in a row. The
# product's 30 made the health-check test wait two minutes for the emulator to replace a hung server,
# which is not what it checks. A start gets as many periods (1 + 2 x 6 + 3 = 16 s at least; a cold start
# of the bridge and mcp-server-time takes a few), so it stretches with a loaded host.
FC_HEALTH_FAILURE_THRESHOLD = max(6, math.ceil(3 * TIMEOUT_SCALE))


# The plain stack keeps 2 good versions per deployment (the product keeps 5): test_release_states shows
# retention deleting a failed version rather than the last good one in three releases, not six. No other
# test on this stack looks at versions past its second release.
RELEASES_KEEP = 2


def active_deployments(stack: Stack) -> list[str]:
    terminal = [s.value for s in TERMINAL]
    with session_scope(stack.settings) as session:
        rows = session.scalars(select(DeploymentRow).where(DeploymentRow.status.not_in(terminal))).all()
        return [f"{row.name}: {row.status}/{row.stage}" for row in rows]


def clean(stack: Stack) -> None:
    """What one test leaves for the next: no deployment still running, no function instance, the
    emulator's start timeout and fault rules as they were."""
    wait_until(lambda: not active_deployments(stack), 60, 0.1, what="every deployment of the test ended")
    stack.fc.dataplane.reset()
    stack.fc.faults.reset()


@pytest.fixture(scope="session")
def shared_stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    stacks = Stacks(tmp_path_factory)
    yield stacks
    stacks.close()


@pytest.fixture(scope="session")
def plain_stack(shared_stacks: Stacks) -> Stack:
    # A drift sweep spreads its checks over 0.8 x the interval, in the order the deployments were made: on a
    # stack that earlier modules deployed to, test_config_drift's would wait minutes for its own check.
    return shared_stacks.start(
        workers=1,
        pool="threads",
        concurrency=4,
        extra_env={"MCPFC_DRIFT_CHECK_INTERVAL_S": "1", "MCPFC_RELEASES_KEEP": str(RELEASES_KEEP)},
    )


@pytest.fixture
def stack(plain_stack: Stack) -> Iterator[Stack]:
    yield plain_stack
    clean(plain_stack)


@pytest.fixture(scope="module")
def beat_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stacks = Stacks(tmp_path_factory)
    stack = stacks.start(
        workers=1,
        pool="threads",
        concurrency=4,
        extra_env={
            "MCPFC_HEALTH_INTERVAL_S": str(HEALTH_INTERVAL_S),
            "MCPFC_HEALTH_TIMEOUT_S": str(HEALTH_PROBE_TIMEOUT_S),
            "MCPFC_BEAT_MAX_LOOP_S": "1",
            "MCPFC_FC_HEALTH_FAILURE_THRESHOLD": str(FC_HEALTH_FAILURE_THRESHOLD),
        },
    )
    log = open(stack.settings.data_dir / "beat.log", "ab")  # noqa: SIM115 - closed with the process
    beat = subprocess.Popen([MCP_FC, "beat"], env=stack.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    yield stack
    beat.send_signal(signal.SIGTERM)
    try:
        beat.wait(30)
    except subprocess.TimeoutExpired:
        beat.kill()
    stacks.close()
