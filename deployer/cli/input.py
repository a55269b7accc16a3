"""Turn CLI flags and a `--file` YAML into a validated request body, without ever echoing a secret.

The body is validated locally with the same `schemas` the API uses, so a request FC would refuse is
never sent. Error messages name the field and the rule; they never carry the value of a secret.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from deployer.client import FieldError
from deployer.errors import MCPFCError
from schemas import DeployRequest, RedeployRequest

# Cross-field rules of DeployRequest that depend on the whole deployment, not on one changed field.
_CROSS_FIELD_RULES = frozenset(
    {"cpu_memory_ratio", "env_total_size", "env_duplicate_key", "acr_instance_required", "command_required"}
)
_PLACEHOLDER = {
    "name": "placeholder",
    "image": "registry.example.com/ns/placeholder:1",
    "command": ["placeholder"],
}


class InputError(MCPFCError):
    """What the user typed (or the file says) cannot be sent: exit 2, nothing sent."""

    code = "InputError"

    def __init__(self, message: str, *, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [])


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace any secret value that slipped into a message with ***. Very short values are left alone
    (replacing every "1" would garble the message and protect nothing)."""
    for value in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def parse_pairs(values: Iterable[str] | None, option: str, *, secret: bool = False) -> dict[str, str]:
    """`KEY=VALUE` pairs; a bare `KEY` takes its value from this process's environment (like docker -e)."""
    out: dict[str, str] = {}
    for index, item in enumerate(values or [], start=1):
        key, sep, value = item.partition("=")
        if not sep:
            env_value = os.environ.get(key) if key else None
            if env_value is None:
                if secret:  # the argument itself may be a mistyped secret: do not repeat it
                    raise InputError(
                        f"{option} #{index} is not KEY=VALUE and names no set environment variable"
                    )
                raise InputError(
                    f"{option} {item!r} is not KEY=VALUE and no environment variable {key!r} is set"
                )
            value = env_value
        if not key:
            raise InputError(f"{option} #{index} has an empty KEY (expected KEY=VALUE)")
        out[key] = value
    return out


def _scalar_text(value: Any) -> Any:
    """YAML turns `PORT: 8080` and `DEBUG: true` into numbers and booleans; env values are strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def load_file(path: str) -> dict[str, Any]:
    """A DeployRequest in YAML (or JSON, which is YAML). `-` reads standard input."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:  # never quote the offending line: it may hold a secret
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise InputError(f"{path} is not valid YAML{where}: {exc.problem or 'syntax error'}") from None
    except yaml.YAMLError:
        raise InputError(f"{path} is not valid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a mapping of DeployRequest fields, not a {type(data).__name__}")
    for key in ("env", "secret_env"):
        if isinstance(data.get(key), dict):
            data[key] = {str(k): _scalar_text(v) for k, v in data[key].items()}
    return data


def field_errors(exc: ValidationError, secrets: Iterable[str] = ()) -> list[FieldError]:
    """pydantic errors as (field, rule, message), never including the rejected input."""
    secrets = list(secrets)
    return [
        FieldError(
            ".".join(str(p) for p in err["loc"]),
            str(err["type"]),
            redact(str(err["msg"]), secrets),
        )
        for err in exc.errors(include_input=False, include_url=False)
    ]


def _invalid(errors: list[FieldError]) -> InputError:
    return InputError("invalid request: " + "; ".join(str(e) for e in errors), errors=errors)


def _secret_values(data: dict[str, Any]) -> list[str]:
    secret_env = data.get("secret_env")
    if isinstance(secret_env, dict):
        return [str(v) for v in secret_env.values() if v is not None]
    return []


def build_deploy_body(
    file_data: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    image: str | None = None,
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
    secret_env: dict[str, str] | None = None,
    region: str | None = None,
    cpu: float | None = None,
    memory_mb: int | None = None,
    timeout_s: int | None = None,
    instance_concurrency: int | None = None,
    transport: str | None = None,
    auth: str | None = None,
    priority: str | None = None,
) -> tuple[DeployRequest, dict[str, Any]]:
    """Merge file and flags (flags win; env maps merge key by key), validate, return (model, POST body).

    The body holds what the user set (the API applies its defaults to the rest), with secret values in
    clear: it is what goes over the wire, and nothing else may print it.
    """
    data: dict[str, Any] = dict(file_data or {})
    scalars = {
        "name": name,
        "image": image,
        "region": region,
        "cpu": cpu,
        "memory_mb": memory_mb,
        "timeout_s": timeout_s,
        "instance_concurrency": instance_concurrency,
        "transport": transport,
        "priority": priority,
    }
    data.update({k: v for k, v in scalars.items() if v is not None})
    if command:
        data["command"] = list(command)
    if auth is not None:
        current = data.get("auth")
        data["auth"] = {**current, "type": auth} if isinstance(current, dict) else {"type": auth}
    for key, extra in (("env", env), ("secret_env", secret_env)):
        if extra:
            base = data.get(key)
            data[key] = {**base, **extra} if isinstance(base, dict) else dict(extra)
    if not data.get("name"):
        raise InputError("give the deployment NAME (or `name:` in --file)")
    secrets = _secret_values(data)
    try:
        req = DeployRequest.model_validate(data)
    except ValidationError as exc:
        raise _invalid(field_errors(exc, secrets)) from None
    body = req.model_dump(mode="json", exclude_unset=True)
    if req.secret_env:
        body["secret_env"] = req.secret_values()
    return req, body


def build_redeploy_body(
    *,
    image: str | None = None,
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
    secret_env: dict[str, str] | None = None,
    cpu: float | None = None,
    memory_mb: int | None = None,
    timeout_s: int | None = None,
    instance_concurrency: int | None = None,
    priority: str | None = None,
    transport: str | None = None,
) -> dict[str, Any]:
    """Only the changed fields. Each is checked against the same FC rule a deploy uses; rules that
    span fields (memory per vCPU, total env size) are the API's to check against the current spec."""
    changes: dict[str, Any] = {
        k: v
        for k, v in {
            "image": image,
            "command": list(command) if command else None,
            "env": env or None,
            "secret_env": secret_env or None,
            "cpu": cpu,
            "memory_mb": memory_mb,
            "timeout_s": timeout_s,
            "instance_concurrency": instance_concurrency,
            "priority": priority,
            "transport": transport,
        }.items()
        if v is not None
    }
    secrets = list((secret_env or {}).values())
    try:
        RedeployRequest.model_validate(changes)
    except ValidationError as exc:
        raise _invalid(field_errors(exc, secrets)) from None
    try:
        DeployRequest.model_validate({**_PLACEHOLDER, **changes})
    except ValidationError as exc:
        errors = [
            e
            for e in field_errors(exc, secrets)
            if e.rule not in _CROSS_FIELD_RULES and e.field.split(".")[0] in changes
        ]
        if errors:
            raise _invalid(errors) from None
    return changes
