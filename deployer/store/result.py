"""A deployment's `result` JSON, typed: the SDK answers a deploy stores and what releases and checks add.

    function_result  CreateFunction/UpdateFunction as the SDK returned it (to_map(), secret env masked)
    trigger_result   CreateTrigger/UpdateTrigger as the SDK returned it (null until the trigger step)
    version_result   the newest PublishFunctionVersion answer                                (releases)
    alias_result     the newest CreateAlias/UpdateAlias answer: the version `live` serves     (releases)
    release          the newest release's number                                           (releases)
    releases         the release history, newest last: {version, release, image, command, env_keys,
                     created, probe, fingerprint, deleted}: what GET .../versions lists     (releases)
    probe            the last probe's summary (deployer/ops/probe.py ProbeResult.summary())
    tool_changes     this release's tools against the previous release's (deployer/ops/tool_drift.py)
    tool_drift       the scheduled health check's tools against the deploy's probe
    health           the scheduled health check's state (deployer/store/health.py)
    drift            config drift: FC against the spec (deployer/ops/drift.py report())
    token            the endpoint token's expiry (deployer/ops/token_expiry.py status())

The SDK answers stay plain dicts: the API shows `result` as stored, and the product contract shows them
in the SDK's own shape. The findings of the scheduled checks (health, tool_drift, tool_changes) carry the
task id of the release they are about (`finding`).

The JSON stays the dict it always was: a key is written when it was read or set, even to null (a deploy
sets `trigger_result` to null at its function step), and dropped only by `discard`; keys this version does
not know (written by another one) are kept in `extra` and written back unchanged, in their place. So a row
stored by an earlier version loads, and writes back as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from deployer.fc.spec import answer_body
from deployer.ops import releases as release_facts
from schemas import Status

SDKAnswer = dict[str, Any]


@dataclass
class DeploymentResult:
    function_result: SDKAnswer | None = None
    trigger_result: SDKAnswer | None = None
    version_result: SDKAnswer | None = None
    alias_result: SDKAnswer | None = None
    release: int | None = None
    releases: list[dict[str, Any]] = field(default_factory=list)
    probe: dict[str, Any] | None = None
    tool_changes: dict[str, Any] | None = None
    tool_drift: dict[str, Any] | None = None
    health: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    token: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The keys the JSON carries, in order (known and unknown): what `to_json` writes back.
    present: list[str] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key in KEYS:
            if getattr(self, key) != default(key) and key not in self.present:
                self.present.append(key)

    def __setattr__(self, name: str, value: Any) -> None:
        # Setting a key writes it, as `result[key] = value` did (None included). `present` is the last
        # field, so the dataclass's own __init__ assignments come before it exists and are not counted.
        object.__setattr__(self, name, value)
        present = self.__dict__.get("present")
        if present is not None and name in KEYS and name not in present:
            present.append(name)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> DeploymentResult:
        data = dict(data or {})
        order = list(data)
        known = {k: data.pop(k) for k in order if k in KEYS}
        return cls(**known, extra=data, present=order)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.present:
            if key in KEYS:
                out[key] = getattr(self, key)
            elif key in self.extra:
                out[key] = self.extra[key]
        for key in KEYS:  # changed in place (a list appended to) without being set
            if key not in out and getattr(self, key) != default(key):
                out[key] = getattr(self, key)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    def update(self, values: Mapping[str, Any]) -> DeploymentResult:
        """Set each key, known or not (a scheduled check's findings); answers itself."""
        for key, value in values.items():
            if key in KEYS:
                setattr(self, key, value)
            else:
                self.extra[key] = value
                if key not in self.present:
                    self.present.append(key)
        return self

    def discard(self, key: str) -> None:
        """Drop a key from the JSON (a finding that no longer holds)."""
        if key in KEYS:
            object.__setattr__(self, key, default(key))
        self.extra.pop(key, None)
        if key in self.present:
            self.present.remove(key)

    # -- what the keys say ---------------------------------------------------------------------------

    @property
    def trigger_qualifier(self) -> str | None:
        """The qualifier the endpoint's trigger serves (`LATEST`, or `live` with releases)."""
        return answer_body(self.trigger_result).get("qualifier")

    @property
    def live_version(self) -> str | None:
        return release_facts.alias_version(self.alias_result)

    def serves(self, status: str) -> bool:
        """Whether the endpoint serves a known release in this status (release_facts.endpoint_serves)."""
        if status == Status.succeeded.value:
            return True
        return release_facts.serving_version(status, self.to_json()) is not None

    def rollback_target(self) -> str | None:
        return release_facts.newest_verified_before(self.releases, self.live_version)

    def kept_releases(self) -> list[dict[str, Any]]:
        """The releases whose version is still published (retention deletes the oldest)."""
        return [r for r in self.releases if not r.get("deleted")]

    def record_release(self, version: str, **fields: Any) -> None:
        """Add to (or create) version's entry of the release history, newest last."""
        releases = [dict(r) for r in self.releases]
        entry = next((r for r in releases if r.get("version") == version), None)
        if entry is None:
            entry = {"version": version}
            releases.append(entry)
        entry.update(fields)
        self.releases = releases

    @property
    def probe_summary(self) -> dict[str, Any]:
        """The last probe's summary ({} when there was none)."""
        return self.probe if isinstance(self.probe, dict) else {}

    def token_warned_at(self, expires_at: str) -> str | None:
        """When the expiry event of the token that expires at `expires_at` was written (None: not yet, or
        the stored expiry is another token's)."""
        token = self.token or {}
        return token.get("warned_at") if token.get("expires_at") == expires_at else None

    def finding(self, key: str, *, status: str, task_id: str | None) -> dict[str, Any] | None:
        """A scheduled check's finding (`health`, `tool_drift`, `tool_changes`) when it is about what the
        endpoint serves now: the deployment succeeded, or its failed or cancelled run left `live` serving
        an earlier version (deployer/ops/releases.py `endpoint_serves`), and the finding carries the
        row's task id."""
        value = getattr(self, key)
        if not self.serves(status) or not isinstance(value, Mapping):
            return None
        return dict(value) if value.get("task_id") == task_id else None


KEYS = frozenset(f.name for f in fields(DeploymentResult)) - {"extra", "present"}


def default(key: str) -> Any:
    f = DeploymentResult.__dataclass_fields__[key]
    return f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
