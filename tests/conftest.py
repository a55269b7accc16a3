"""Shared fixtures: a real FC emulator on loopback and the credentials the SDK's chain reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

TEST_AK = "test-ak"
TEST_SK = "test-secret-key"


def _machine_slowness() -> float:
    """How many times slower than a quiet 2-core runner this machine is right now (1 to 6), or the
    MCPFC_TEST_TIMEOUT_SCALE override. Deadlines stretch by it, so on a loaded host a test fails when the
    thing it waits for never happens, not when it happens late. Measured once per session: a CPU loop,
    and a fresh interpreter importing SQLAlchemy (worker and API start-up is where a loaded host hurts)."""
    if override := os.environ.get("MCPFC_TEST_TIMEOUT_SCALE"):
        return max(1.0, float(override))
    started = time.perf_counter()
    sum(range(1_000_000))
    compute = (time.perf_counter() - started) / 0.02  # ~0.015 s on a quiet runner
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sqlalchemy.orm"], check=False, timeout=120)
    startup = (time.perf_counter() - started) / 0.6  # ~0.4 s on a quiet runner
    # Load comes and goes within a run: one quick probe must not tighten the deadlines, so CI starts at 2.
    floor = 2.0 if os.environ.get("CI", "").lower() in ("1", "true", "yes") else 1.0
    return min(6.0, max(floor, compute, startup))


TIMEOUT_SCALE = _machine_slowness()
# Measured once per run: xdist workers (started after this) inherit it, instead of each measuring while
# the others start up, and every worker stretches its deadlines (and leases, thresholds) alike.
os.environ["MCPFC_TEST_TIMEOUT_SCALE"] = str(TIMEOUT_SCALE)
# Cold starts (mcp-proxy + the MCP server) in the emulator get the same allowance; read at its import.
os.environ.setdefault("MCPFC_EMULATOR_START_TIMEOUT_S", str(60.0 * TIMEOUT_SCALE))

from fc_emulator import EmulatorServer  # noqa: E402 (after the start timeout is set)


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, *, what: str = "condition"
) -> Any:
    """Poll until the predicate holds; fail with its last value at the deadline.

    Every 50 ms unless told otherwise: most predicates are HTTP or SQL round trips to another process, and
    at 50 polls a second a few waiting tests kept a core of the 2-core CI busy answering them. A test that
    must catch a short-lived state passes a smaller interval."""
    timeout *= TIMEOUT_SCALE
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout:.0f} s (last value: {value!r})")
        time.sleep(interval)


@pytest.fixture(scope="session")
def fc_server() -> Iterator[EmulatorServer]:
    server = EmulatorServer(
        port=0, access_key_id=TEST_AK, access_key_secret=TEST_SK, pending_seconds=0.3
    ).start()
    yield server
    server.stop()


@pytest.fixture
def fc(fc_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    """The shared emulator, wiped before the test, with the SDK credential chain pointed at its keys."""
    fc_server.reset()
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_SK)
    return fc_server


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


# pytest-timeout's per-test limit is a backstop for a hang, not a deadline: the slowest test takes ~30 s
# on a quiet runner and its limit is 300 s. It stretches at most 2x, so that a hung test on a loaded
# host costs minutes, not the whole CI budget.
TIMEOUT_LIMIT_SCALE = min(2.0, TIMEOUT_SCALE)


@pytest.hookimpl(tryfirst=True)  # the groups must be marked before xdist reads them
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("timeout")
        base = float(marker.args[0]) if marker and marker.args else float(config.getini("timeout") or 0)
        if base:
            item.add_marker(pytest.mark.timeout(base * TIMEOUT_LIMIT_SCALE), append=False)
    schedule(config, items)


# -- xdist: which tests run together, and in what order --------------------------------------------------
# CI runs `pytest -n 4 --dist loadgroup --no-loadscope-reorder` (pyproject's addopts): tests without a group
# go one by one to whichever worker is free; a group goes whole to one worker. Tests that share an expensive
# module-scoped fixture (a module's stack) are grouped by module, so the fixture is built once. Module-scoped
# fixtures that cost next to nothing to build again (factories and fresh databases, built on each worker
# that runs a test of the module) do not group: the tests that use them spread over the workers.
CHEAP_MODULE_FIXTURES = frozenset(
    {"stack_factory", "pg_database", "postgres_url", "redis_url", "redis_results_url", "rabbitmq_url"}
)


def xdist_group(item: pytest.Item) -> str | None:
    # pytest has no public API for a collected test's fixture definitions: _fixtureinfo is what it keeps.
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    scopes = {name: defs[-1].scope for name, defs in info.name2fixturedefs.items() if defs}
    if any(scope == "module" and name not in CHEAP_MODULE_FIXTURES for name, scope in scopes.items()):
        return item.nodeid.split("::", 1)[0]
    return None


# Where the time goes (per-test durations, issue 22 #4), longest first; everything else runs after these.
SLOWEST_FIRST = (
    "tests/reliability/test_faults.py",
    # three runs of the conformance suite side by side on one worker (~25 s with its deployment)
    "tests/conformance/",
    "tests/e2e/test_health_checks.py",
    "tests/e2e/test_tool_drift.py",
    "tests/e2e/test_imageless.py",
    "tests/build/test_builder.py",
    "tests/e2e/",
    "tests/reliability/",
    "tests/integration/",
    "tests/security/",
)


def cost_rank(nodeid: str) -> int:
    return next(
        (i for i, prefix in enumerate(SLOWEST_FIRST) if nodeid.startswith(prefix)), len(SLOWEST_FIRST)
    )


def schedule(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first: xdist hands out work in collection order, so the modules that take minutes start
    at once and the hundreds of quick in-process tests fill the gaps at the end. Under xdist, each test
    also gets its group (see above)."""
    items.sort(key=lambda item: cost_rank(item.nodeid))
    if hasattr(config, "workerinput"):
        for item in items:
            if group := xdist_group(item):
                item.add_marker(pytest.mark.xdist_group(group))


def pytest_report_header() -> str:
    return (
        f"mcp-fc: deadlines x{TIMEOUT_SCALE:.1f} (machine slowness; MCPFC_TEST_TIMEOUT_SCALE overrides), "
        f"per-test limits x{TIMEOUT_LIMIT_SCALE:.1f}"
    )


# -- the reliability suite's fault-run numbers, printed once at the end ------------------------------------
# Each fault run's numbers travel in its test report (tests/reliability/conftest.py puts them there), so this
# summary is the same with or without xdist: under xdist only the controller prints, and it sees reports.
FAULT_RUN = "fault run"
FAULT_RUNS: list[dict[str, Any]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        FAULT_RUNS.extend(value for name, value in report.user_properties if name == FAULT_RUN)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FAULT_RUNS:
        return
    terminalreporter.section("reliability: fault runs")
    for result in FAULT_RUNS:
        terminalreporter.write_line(result["line"])
    if out := os.environ.get("MCPFC_RELIABILITY_REPORT"):
        Path(out).write_text(json.dumps(FAULT_RUNS, indent=2))
