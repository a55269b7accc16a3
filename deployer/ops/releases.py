"""What a deployment's stored result says about its releases (pure functions).

The deploy task and the releases routes read the same facts: which version `live` serves, and which one a
rollback without `--to` moves it to. One home, so the route refuses exactly what the task would fail on.
deployer/store/result.py's `DeploymentResult` answers them for a loaded result; `live_version` and
`rollback_target` answer them for a `result` JSON as stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from deployer.fc.spec import LIVE_ALIAS, answer_body
from deployer.ops import spec_diff
from schemas import Status

#: A run of these ended: when `live` serves a version, the endpoint serves it whatever the run did.
ENDED = frozenset({Status.succeeded.value, Status.failed.value, Status.cancelled.value})


def alias_version(alias_result: Mapping[str, Any] | None) -> str | None:
    """The version an alias serves, from its stored CreateAlias/UpdateAlias answer."""
    version = answer_body(alias_result).get("versionId")
    return str(version) if version else None


def verified(release: Mapping[str, Any]) -> bool:
    """A release whose verify probe passed and whose version is still published."""
    probe = release.get("probe")
    return bool(isinstance(probe, Mapping) and probe.get("ok")) and not release.get("deleted")


def failed_verification(release: Mapping[str, Any]) -> bool:
    """A release whose verify probe ran and failed (or was cancelled before it ended): never served, and
    never a rollback target."""
    probe = release.get("probe")
    return isinstance(probe, Mapping) and not probe.get("ok")


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


def serving_version(status: str, result: Mapping[str, Any] | None) -> str | None:
    """The version the endpoint serves once its last run ended (succeeded, failed or cancelled): `live`'s,
    when the endpoint's trigger serves that alias. None: a run is in progress, the deployment was deleted,
    has no releases (its trigger serves LATEST), or its first release never went live."""
    if status not in ENDED or not result:
        return None
    if answer_body(result.get("trigger_result")).get("qualifier") != LIVE_ALIAS:
        return None
    return live_version(result)


def endpoint_serves(status: str, result: Mapping[str, Any] | None) -> bool:
    """Whether the deployment has an endpoint that serves a known release: a succeeded one, or a failed or
    cancelled redeploy whose `live` still serves an earlier version (issue 26 #14). What the scheduled
    checks watch and what client configs are handed out for."""
    return status == Status.succeeded.value or serving_version(status, result) is not None


def release_of(result: Mapping[str, Any] | None, version: str | None) -> dict[str, Any] | None:
    """The release history's entry of `version`."""
    if not result or version is None:
        return None
    return next((dict(r) for r in result.get("releases") or [] if str(r.get("version")) == version), None)


def retention_doomed(releases: Iterable[Mapping[str, Any]], live: str | None, keep: int) -> list[str]:
    """The published versions retention deletes, oldest first: every one that failed verification (never
    servable), and the good ones past the newest `keep` good ones. `live` is never deleted, and failed
    versions do not count: the last good versions, which rollbacks need, stay."""
    kept = [r for r in releases if not r.get("deleted")]
    good = [r for r in kept if not failed_verification(r)]
    surplus = {str(r["version"]) for r in good[: max(0, len(good) - max(1, keep))]}
    doomed = [str(r["version"]) for r in kept if failed_verification(r) or str(r["version"]) in surplus]
    return [v for v in doomed if v != live]


def live_release(
    status: str, result: Mapping[str, Any] | None, spec: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The Deployment's `live`: the version the endpoint serves (`serving_version`), what it was released
    with, and the spec fields it differs in (after a rollback or a failed redeploy). None: nothing live."""
    version = serving_version(status, result)
    if version is None:
        return None
    entry = release_of(result, version) or {}
    released = entry.get("spec")
    if isinstance(released, Mapping):
        differs = spec_diff.changed_fields(
            dict(released),
            dict(released.get("secret_env") or {}),
            dict(spec),
            dict(spec.get("secret_env") or {}),
        )
    else:  # a release recorded before releases kept their spec: what it did keep
        keys = sorted({*(spec.get("env") or {}), *(spec.get("secret_env") or {})})
        pairs = (
            ("image", entry.get("image"), spec.get("image")),
            ("command", entry.get("command"), spec.get("command")),
            ("env", entry.get("env_keys"), keys),
        )
        differs = [name for name, have, want in pairs if have is not None and have != want]
    return {
        "version": version,
        "release": entry.get("release"),
        "image": entry.get("image"),
        "command": list(entry.get("command") or []),
        "env_keys": list(entry.get("env_keys") or []),
        "differs_from_spec": differs,
    }
