"""What a deployment's stored result says about its releases (pure functions over `result`).

The deploy task and the releases routes read the same facts: which version `live` serves, and which one a
rollback without `--to` moves it to. One home, so the route refuses exactly what the task would fail on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def live_version(result: Mapping[str, Any] | None) -> str | None:
    """The version the `live` alias serves, from the stored CreateAlias/UpdateAlias answer."""
    alias = ((result or {}).get("alias_result") or {}).get("body") or {}
    return str(alias["versionId"]) if alias.get("versionId") else None


def rollback_target(result: Mapping[str, Any] | None) -> str | None:
    """The newest verified, still published version older than `live` (None: nothing to roll back to)."""
    live = live_version(result)
    verified = [
        str(r["version"])
        for r in (result or {}).get("releases") or []
        if (r.get("probe") or {}).get("ok") and not r.get("deleted")
    ]
    older = [v for v in verified if live is None or int(v) < int(live)]
    return older[-1] if older else None
