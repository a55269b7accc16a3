"""The relay through a deployment on the emulator (issue 24): the official mcp 2.x client in each era gets
progress, log messages, sampling, elicitation and roots round trips and a 5 MB result through the trigger
(JWT auth) to the real bridge in front of tests/e2e/relay_server.py.

Cancellation: in the handshake era the client's ``notifications/cancelled`` reaches the server (the session
lives on the one instance). In 2026-07-28 a client cancels by closing its request, and what FC does with a
closed client connection is not public: the emulator models the strictest reading (it does not pass the
close on), so a 2026-07-28 cancellation does not reach the server through it (docs/decisions.md, issue 24),
and this test shows that the abandoned call ran on.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.relay_checks import SERVER, assert_all_carried, exercise
from tests.e2e.test_both_eras import deploy

pytestmark = pytest.mark.e2e


def test_every_feature_through_a_deployment_in_each_era(stack):
    dep, headers = deploy(stack, "relay", command=SERVER)
    url = dep["urls"]["mcp"]
    legacy = asyncio.run(exercise(url, "legacy", headers))
    assert legacy["protocol"] == "2025-11-25"
    assert_all_carried(legacy)
    modern = asyncio.run(exercise(url, "2026-07-28", headers, cancel=False))
    assert modern["protocol"] == "2026-07-28"
    assert_all_carried(modern)
