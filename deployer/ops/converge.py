"""What FC runs against what a deployment asks for (pure), for late writes (issue 16 #4).

An UpdateFunction whose response timed out may still be applied by FC later, after a retry succeeded and
after a newer redeploy: FC then runs an older spec while the store says the newer one. The deploy task
compares before it records `succeeded`, and a follow-up check (tasks/verify.py) compares again for a
while after a write timed out, writing the deployment's spec again when they differ.
"""

from __future__ import annotations

from typing import Any

from deployer.fc import spec
from schemas import DeployRequest

#: The fields a deploy or redeploy sets that a stale write would change (each compared as FC returns it).
COMPARED = ("cpu", "memorySize", "diskSize", "timeout", "instanceConcurrency", "environmentVariables")
CONTAINER = ("image", "command", "port")


def function_drift(req: DeployRequest, body: dict[str, Any]) -> list[str]:
    """The names of the fields where GetFunction's body differs from what `req` deploys ([] when equal)."""
    return [name for name, _, _ in function_differences(req, body)]


def function_differences(req: DeployRequest, body: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(field, what FC has, what the spec wants)`` for each managed field that differs. Values are raw
    (environmentVariables holds secret values): a caller that shows them masks them first."""
    want = spec.update_function_input(req).to_map()
    found = [
        (key, body.get(key), want[key])
        for key in COMPARED
        if key in want and _norm(body.get(key)) != _norm(want[key])
    ]
    have_c = body.get("customContainerConfig") or {}
    want_c = want.get("customContainerConfig") or {}
    found += [
        (f"customContainerConfig.{key}", have_c.get(key), want_c[key])
        for key in CONTAINER
        if key in want_c and _norm(have_c.get(key)) != _norm(want_c[key])
    ]
    return found


def _norm(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if value in (None, {}, []):
        return None
    return value
