"""When a deployment's endpoint token expires, and whether that is soon (pure; issue 15 #5).

Endpoint tokens are JWTs we mint ourselves (deployer/fc/endpoint_auth.py) with an `exp` claim. FC refuses
an expired one, and every MCP client configured with it then stops working at once, so a token that
expires within `token_expiry_warn_days` is flagged on the deployment (`token.expiring`) and in
`mcp-fc status`; with `token_auto_rotate` the scheduled check rotates it (tasks/tokens.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt


def expires_at(token: str) -> datetime | None:
    """The token's `exp`, read without checking its signature (we minted it; only the date is wanted)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    exp = claims.get("exp")
    return datetime.fromtimestamp(int(exp), UTC) if isinstance(exp, int | float) else None


def status(expiry: datetime, warn_days: float, now: datetime | None = None) -> dict[str, Any]:
    """The Deployment's ``token``: ``{"expires_at", "expiring", "checked_at"}`` (JSON-ready)."""
    now = now or datetime.now(UTC)
    return {
        "expires_at": expiry.isoformat(timespec="seconds"),
        "expiring": expiry - now <= timedelta(days=warn_days),
        "checked_at": now.isoformat(timespec="seconds"),
    }


def rotation_helps(warn_days: float, ttl_days: float) -> bool:
    """A new token must leave the warning window, or an auto-rotation would repeat on every check."""
    return warn_days < ttl_days
