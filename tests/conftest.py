"""Shared fixtures: a real FC emulator on loopback and the credentials the SDK's chain reads."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deployer.emulator import EmulatorServer

TEST_AK = "test-ak"
TEST_SK = "test-secret-key"


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, *, what: str = "condition"
) -> Any:
    """Poll until the predicate holds; fail with its last value at the deadline."""
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
    server = EmulatorServer(port=0, access_key_id=TEST_AK, access_key_secret=TEST_SK, pending_seconds=0.3).start()
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
