"""deployer/ops/token_expiry.py: a token's expiry from its own `exp`, and the warning window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deployer.fc.endpoint_auth import mint_token, new_signing_key
from deployer.ops import token_expiry

NOW = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)


def test_the_expiry_is_the_tokens_exp():
    token = mint_token(new_signing_key(), subject="o/n", ttl_s=86400, now=NOW.timestamp())
    assert token_expiry.expires_at(token) == NOW + timedelta(days=1)
    assert token_expiry.expires_at("not-a-jwt") is None


def test_inside_the_window_is_expiring_outside_is_not():
    assert token_expiry.status(NOW + timedelta(days=29), 30, now=NOW)["expiring"] is True
    assert token_expiry.status(NOW + timedelta(days=31), 30, now=NOW)["expiring"] is False
    assert token_expiry.status(NOW - timedelta(days=1), 30, now=NOW)["expiring"] is True  # already expired
    assert token_expiry.status(NOW, 30, now=NOW)["expires_at"] == "2026-12-03T07:00:00+00:00"


def test_rotation_only_helps_when_new_tokens_outlive_the_window():
    assert token_expiry.rotation_helps(30, 365) and not token_expiry.rotation_helps(30, 20)
