"""A deployment run's checkpoint (the row's `checkpoint` JSON): what the run has done so far, typed.

Every step of the deploy and delete tasks records itself here before the next starts, so a redelivered
message resumes; the recovery sweep counts its re-queues in it. deployer/store/lifecycle.py's verbs and
run_writes.py's `RunWrites` store it (`to_json`), every reader loads it with `from_json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Checkpoint:
    """What a run has done so far (the row's `checkpoint` JSON), so a redelivered message resumes.

    Stored as JSON with only the fields that differ from their defaults; keys this version does not know
    (written by a newer one) are kept in `extra` and written back unchanged.
    """

    # deploy steps done
    function: bool = False  # the function was written (create or update)
    created: bool = False  # ... by a create: a cancelled or failed first deploy removes it again
    ready: bool = False  # FC said Active with no update in progress
    trigger: bool = False
    probe: bool = False
    # waiting for the function
    waiting: bool = False  # between re-scheduled readiness polls
    polls: int = 0
    wait_started: float | None = None
    wait_message: str | None = None
    reactivated: bool = False  # an Inactive function was written again once
    converge: int = 0  # rewrites of this deploy's spec after FC ran another one
    uncertain_at: float | None = None  # a write to FC timed out at this time (tasks/verify.py)
    # re-scheduling and recovery
    transient: int = 0  # re-schedules after FC kept failing transiently
    due_at: float | None = None  # the re-scheduled run is due then: recovery waits until then
    recovered: int = 0  # re-queues by the stuck-deploy recovery
    restore: dict[str, Any] | None = None  # a redeploy's previous spec (and secret env), see restore_fields
    # releases
    release: int | None = None
    version: str | None = None
    verify_trigger: bool = False
    verified: bool = False
    tools: list[str] | None = None
    cutover: bool = False
    verify_removed: bool = False
    rollback_to: str | None = None
    # reconcile (issue 26 #2): what FC showed drifted when the run looked, so a re-run after a wait
    # finishes that plan instead of looking again (and finding its own half-done write)
    reconcile: list[str] | None = None
    # token rotation (issue 26 #1): a new signing key on the trigger alone
    rotate: bool = False  # the run makes a new key (the old one stays until then)
    rotated: bool = False  # ... and saved it: a re-run writes the same one
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Checkpoint:
        data = dict(data or {})
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: data.pop(k) for k in list(data) if k in known}, extra=data)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
            if value != default:
                out[f.name] = value
        return {**self.extra, **out}

    def restore_fields(self) -> dict[str, Any]:
        """The row fields that put a cancelled redeploy's spec back to what FC runs (empty when none)."""
        saved = self.restore
        if not isinstance(saved, dict) or not saved.get("spec"):
            return {}
        return {"spec": saved["spec"], "secret_env_enc": saved.get("secret_env_enc")}
