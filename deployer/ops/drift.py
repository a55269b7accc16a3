"""Config drift: what FC runs compared with what the deployment's spec produces (pure; issue 15 #4).

A function edited in the FC console (or through the SDK) keeps serving, silently, with settings the
deployment does not know. tasks/drift.py reads GetFunction, GetTrigger and (with releases) GetAlias on a
schedule and records what :func:`differences` finds as the deployment's ``drift``: each managed field that
differs, what FC has and what the spec wants. `mcp-fc reconcile` converges it through the deploy task.

Compared: the function fields a deploy sets (deployer/ops/converge.py: sizes, timeout, concurrency, env, image,
command, port), the endpoint trigger's qualifier and managed ``triggerConfig`` keys (authType, methods,
disableURLInternet, the JWT key ids), and the ``live`` alias's version. Secret env values never appear:
a secret key's values show as ``***`` on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from deployer.failure_text import MASK, scrub
from deployer.fc import spec
from deployer.ops.converge import function_differences
from schemas import DeployRequest

TRIGGER_KEYS = ("authType", "methods", "disableURLInternet")


def _env_difference(have: Any, want: Any, secret_keys: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    have, want = dict(have or {}), dict(want or {})
    keys = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))

    def shown(values: dict[str, Any]) -> dict[str, Any]:
        return {k: (MASK if k in secret_keys and k in values else values.get(k)) for k in keys}

    return shown(have), shown(want)


def function_fields(req: DeployRequest, body: dict[str, Any]) -> list[dict[str, Any]]:
    secret_keys = set(req.secret_env)
    secrets = list(req.secret_values().values())
    found = []
    for field, have, want in function_differences(req, body):
        if field == "environmentVariables":
            have, want = _env_difference(have, want, secret_keys)
        found.append({"field": field, "fc": _scrubbed(have, secrets), "spec": _scrubbed(want, secrets)})
    return found


def _scrubbed(value: Any, secrets: Iterable[str]) -> Any:
    """A value with any secret value in it masked (a secret may also sit in a command line)."""
    secrets = list(secrets)
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, list):
        return [_scrubbed(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _scrubbed(v, secrets) for k, v in value.items()}
    return value


def _kids(config: dict[str, Any]) -> list[str]:
    auth = config.get("authConfig") or {}
    if isinstance(auth, str):
        try:
            auth = json.loads(auth)
        except ValueError:
            return []
    if not isinstance(auth, dict):
        return []
    jwks = auth.get("jwks") or {}
    keys = jwks.get("keys") or []
    return sorted(str(k.get("kid")) for k in keys if isinstance(k, dict))


def trigger_fields(
    req: DeployRequest, auth: spec.EndpointAuth, body: dict[str, Any], *, qualifier: str
) -> list[dict[str, Any]]:
    found = []
    if body.get("qualifier") != qualifier:
        found.append({"field": "trigger.qualifier", "fc": body.get("qualifier"), "spec": qualifier})
    raw = body.get("triggerConfig")
    try:
        have = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    except ValueError:
        have = {}
    want = spec.trigger_config(req, auth)
    for key in TRIGGER_KEYS:
        if have.get(key) != want.get(key):
            found.append(
                {"field": f"trigger.triggerConfig.{key}", "fc": have.get(key), "spec": want.get(key)}
            )
    if _kids(have) != _kids(want):
        found.append(
            {"field": "trigger.triggerConfig.authConfig.jwks", "fc": _kids(have), "spec": _kids(want)}
        )
    return found


def alias_fields(body: dict[str, Any], live_version: str | None) -> list[dict[str, Any]]:
    have = body.get("versionId")
    if live_version is None or str(have) == str(live_version):
        return []
    return [{"field": "alias.live.versionId", "fc": have, "spec": live_version}]


def report(fields: list[dict[str, Any]], *, now: datetime | None = None) -> dict[str, Any]:
    """The ``drift`` a deployment carries: ``{"drifted", "checked_at", "fields": [{field, fc, spec}]}``."""
    checked = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    return {"drifted": bool(fields), "checked_at": checked, "fields": fields}


def summary(fields: list[dict[str, Any]]) -> str:
    """One line for an event: ``memorySize: FC has 1024, the spec wants 512; ...``."""
    parts = []
    for f in fields[:6]:
        parts.append(f"{f['field']}: FC has {json.dumps(f['fc'])}, the spec wants {json.dumps(f['spec'])}")
    more = f"; and {len(fields) - 6} more" if len(fields) > 6 else ""
    return "; ".join(parts) + more
