"""The event a waiting deploy writes about its function never reads `update None` (issue 17 #9)."""

from __future__ import annotations

import pytest

from tasks.deploy import waiting_message


@pytest.mark.parametrize(
    ("body", "reason", "expected"),
    [
        ({"state": "Pending"}, "Creating", "function Pending: Creating"),
        ({"state": "Pending", "lastUpdateStatus": None}, "", "function Pending"),
        ({"state": "Pending", "lastUpdateStatus": ""}, "Creating", "function Pending: Creating"),
        (
            {"state": "Active", "lastUpdateStatus": "InProgress"},
            "ImageOptimizing",
            "function Active, update InProgress: ImageOptimizing",
        ),
        ({}, "", "function state unknown"),
    ],
)
def test_waiting_message(body, reason, expected):
    assert waiting_message(body, reason) == expected
    assert "None" not in waiting_message(body, reason)
