"""`@modelcontextprotocol/server-everything` shows the same tools through the bridge as over stdio, to a client
with sampling, elicitation and roots (issue 24): the server gates some tools on its client's capabilities, and
the bridge initialises it declaring every capability it relays (it showed 13 of 17 when it declared none).

The npm package is installed once into the worktree's ignored .cache/ (about 15 s), then reused.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.e2e.relay_checks import client, elicit, roots, sample
from tests.e2e.test_bridge import Running

pytestmark = pytest.mark.e2e

PACKAGE = "@modelcontextprotocol/server-everything@2026.8.31"
CACHE = Path(__file__).parents[2] / ".cache" / "npm" / "server-everything"
BIN = CACHE / "node_modules" / ".bin" / "mcp-server-everything"


@pytest.fixture(scope="module")
def everything() -> list[str]:
    if not BIN.exists():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed to install server-everything"
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", PACKAGE],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return [str(BIN), "stdio"]


@pytest.fixture(scope="module")
def bridge(everything: list[str]) -> Iterator[Running]:
    running = Running(server=everything)
    yield running
    running.stop()


async def tools_over_stdio(argv: list[str]) -> list[str]:
    params = StdioServerParameters(command=argv[0], args=argv[1:])
    async with Client(
        params,
        mode="legacy",
        sampling_callback=sample,
        elicitation_callback=elicit,
        list_roots_callback=roots,
    ) as c:
        return sorted(t.name for t in (await c.list_tools()).tools)


async def tools_over_http(url: str, mode: str) -> list[str]:
    import httpx2

    async with httpx2.AsyncClient(timeout=httpx2.Timeout(60)) as http:
        async with client(url, http, mode, []) as c:
            return sorted(t.name for t in (await c.list_tools()).tools)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_the_same_tools_through_the_bridge_as_over_stdio(everything, bridge, mode):
    direct = asyncio.run(tools_over_stdio(everything))
    through = asyncio.run(tools_over_http(bridge.url + "/mcp", mode))
    assert through == direct
    # the capability-gated ones are there (the bridge used to hide them)
    assert {"trigger-sampling-request", "get-roots-list"} <= set(through), through
