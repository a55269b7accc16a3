"""Which fields of a deployment's spec a new deploy changes (for the `Mcpfc-Changed-Fields` header).

A deploy onto a name that already has a deployment replaces its spec in place (same id and URL). The API
says so, with the top-level fields that differ, so the CLI can tell the user what the deploy will change.
Only field names leave this module: secret values are compared here and never returned.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from schemas import DeployRequest


def _normalised(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored spec with the defaults of fields added since it was written, so they do not read as changes."""
    data = {k: v for k, v in spec.items() if k != "region"}
    try:
        normal = DeployRequest.model_validate(data).model_dump(mode="json")
    except ValidationError:  # a spec stored under older rules: compare it as it is
        normal = dict(data)
    normal["region"] = spec.get("region")
    return normal


def changed_fields(
    old_spec: dict[str, Any],
    old_secrets: dict[str, str] | None,
    new_spec: dict[str, Any],
    new_secrets: dict[str, str],
) -> list[str]:
    """The top-level fields whose values differ, sorted; `secret_env` when a key or a value differs."""
    old, new = _normalised(old_spec), _normalised(new_spec)
    changed = {key for key in old.keys() | new.keys() if key != "secret_env" and old.get(key) != new.get(key)}
    if (old_secrets or {}) != new_secrets:
        changed.add("secret_env")
    return sorted(changed)
