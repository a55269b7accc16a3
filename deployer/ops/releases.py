"""What a deployment's stored result says about its releases (pure functions).

The deploy task and the releases routes read the same facts: which version `live` serves, and which one a
rollback without `--to` moves it to. One home, so the route refuses exactly what the task would fail on.
deployer/store/result.py's `DeploymentResult` answers them for a loaded result; `live_version` and
`rollback_target` answer them for a `result` JSON as stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from deployer.fc.spec import answer_body


def alias_version(alias_result: Mapping[str, Any] | None) -> str | None:
    """The version an alias serves, from its stored CreateAlias/UpdateAlias answer."""
    version = answer_body(alias_result).get("versionId")
    return str(version) if version else None


def verified(release: Mapping[str, Any]) -> bool:
    """A release whose verify probe passed and whose version is still published."""
    probe = release.get("probe")
    return bool(isinstance(probe, Mapping) and probe.get("ok")) and not release.get("deleted")


def newest_verified_before(releases: Iterable[Mapping[str, Any]], live: str | None) -> str | None:
    """The newest verified, still published version older than `live` (None: nothing to roll back to)."""
    older = [str(r["version"]) for r in releases if verified(r)]
    older = [v for v in older if live is None or int(v) < int(live)]
    return older[-1] if older else None


def live_version(result: Mapping[str, Any] | None) -> str | None:
    """The version the `live` alias serves, from a deployment's `result` JSON."""
    return alias_version(result.get("alias_result") if result else None)


def rollback_target(result: Mapping[str, Any] | None) -> str | None:
    """The newest verified, still published version older than `live` (None: nothing to roll back to)."""
    releases = (result.get("releases") if result else None) or []
    return newest_verified_before(releases, live_version(result))
