"""HTTP trigger authentication, checked as FC does: before the function is started or sees the request.

``triggerConfig.authType``:

* ``anonymous``: no check; every header (``Authorization`` included) reaches the function.
* ``jwt``: a token is looked up as ``authConfig.tokenLookup`` says (comma-separated ``header:NAME[:PREFIX]``,
  ``query:NAME`` or ``cookie:NAME``; default ``header:Authorization:Bearer `` with its trailing space) and
  verified against ``authConfig.jwks`` (the JWK's algorithm, ``exp`` required) with the emulator's own
  :func:`fc_emulator.jwt_verify.verify`. The PREFIX is stripped **literally**, as FC does (devsapp/fc3
  docs: "prefix 需要以一个空格结尾"): a value that does not start with it carries no token, and with a prefix
  ``Bearer`` (no space) the header ``Bearer eyJ...`` yields `` eyJ...``, which is not a JWT. Missing, expired
  or invalid → ``401 Unauthorized``. ``authConfig.whitelist`` lists paths that need no token; ``blacklist``
  the only paths that do (a trailing ``*`` matches a prefix). ``claimPassBy`` (``header:CLAIM:NAME`` /
  ``query:CLAIM:NAME``, comma-separated; optional, and devsapp's ``query::`` passes nothing) hands verified
  claims to the function. ``authConfig`` may be an object or a JSON string, with the devsapp lower-camel
  keys or the API doc's ``JWKS``/``TokenLookup``/``ClaimPassBy`` ones.
* ``function``: the request must carry an ACS3-HMAC-SHA256 signature (``Authorization`` header,
  ``x-acs-content-sha256`` ...) made with the emulator's access key pair, verified by
  :func:`fc_emulator.signing.verify_request` over the raw path, query, signed headers and body.
  Missing or wrong → ``403 SignatureNotMatch`` (``InvalidAccessKeyID`` for an unknown key id).

``bearer`` is refused when the trigger is written (:mod:`fc_emulator.models`): FC documents the
feature, but no public source shows its wire format, so the emulator does not pretend to know it.

For ``jwt`` (token from a header) and ``function`` the consumed ``Authorization`` header is not
forwarded to the function. 401 answers carry ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

import jwt

from .exceptions import FCError, InvalidArgument
from .jwt_verify import verify
from .signing import Credentials, header_values, verify_request

DEFAULT_TOKEN_LOOKUP = "header:Authorization:Bearer "


class Unauthorized(FCError):
    """401 from trigger authentication (jwt)."""

    status = 401
    code = "Unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="fc"'})


@dataclass(frozen=True)
class AuthResult:
    """What trigger authentication leaves for the proxy."""

    auth_type: str
    #: Lower-case header names not to forward to the function (a consumed credential).
    drop_headers: frozenset[str] = frozenset()
    #: Headers and query parameters added for the function (JWT ``claimPassBy``).
    add_headers: tuple[tuple[str, str], ...] = ()
    add_query: tuple[tuple[str, str], ...] = ()
    claims: dict[str, Any] | None = field(default=None, compare=False)


def _auth_config(config: Mapping[str, Any]) -> dict[str, Any]:
    raw = config.get("authConfig")
    if raw in (None, ""):
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidArgument("triggerConfig.authConfig is not valid JSON") from None
    if not isinstance(raw, Mapping):
        raise InvalidArgument("triggerConfig.authConfig must be an object")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        norm = "jwks" if key.upper() == "JWKS" else key[:1].lower() + key[1:]
        out[norm] = value
    return out


def _path_matches(path: str, patterns: Any) -> bool:
    for pattern in patterns or []:
        if not isinstance(pattern, str):
            continue
        if pattern.endswith("*") and path.startswith(pattern[:-1]):
            return True
        if path == pattern:
            return True
    return False


def _split_list(value: Any) -> list[str]:
    """Comma-separated items. Leading whitespace goes; trailing whitespace stays, because it belongs to a
    tokenLookup prefix (``header:Authorization:Bearer ``)."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    return [str(v).lstrip() for v in items if str(v).strip()]


def _lookup_token(lookups: list[str], headers: Any, raw_query: str) -> tuple[str | None, str | None]:
    """``(token, header name it came from or None)``; the first source that has one wins."""
    for lookup in lookups:
        kind, _, rest = lookup.partition(":")
        kind = kind.strip().lower()
        if kind == "header":
            name, _, prefix = rest.partition(":")
            for value in header_values(headers, name.strip()):
                if prefix:
                    # Literally, as FC does: no case folding, no trimming of what is left.
                    if not value.startswith(prefix):
                        continue
                    value = value[len(prefix) :]
                if value:
                    return value, name.strip().lower()
        elif kind == "query":
            for key, value in parse_qsl(raw_query, keep_blank_values=False):
                if key == rest.strip() and value:
                    return value, None
        elif kind == "cookie":
            for cookie_header in header_values(headers, "cookie"):
                jar: SimpleCookie = SimpleCookie()
                try:
                    jar.load(cookie_header)
                except CookieError:
                    continue
                morsel = jar.get(rest.strip())
                if morsel is not None and morsel.value:
                    return morsel.value, None
    return None, None


def _claims_passed(
    claim_pass_by: Any, claims: Mapping[str, Any]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    add_headers: list[tuple[str, str]] = []
    add_query: list[tuple[str, str]] = []
    for item in _split_list(claim_pass_by):
        parts = item.strip().split(":")
        if len(parts) != 3 or not parts[1] or not parts[2] or parts[1] not in claims:
            continue
        kind, claim, name = parts
        value = claims[claim]
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        if kind.lower() == "header":
            add_headers.append((name, text))
        elif kind.lower() == "query":
            add_query.append((name, text))
    return add_headers, add_query


def _jwt(config: Mapping[str, Any], raw_path: str, raw_query: str, headers: Any) -> AuthResult:
    auth = _auth_config(config)
    if auth.get("whitelist") and _path_matches(raw_path, auth["whitelist"]):
        return AuthResult("jwt")
    if auth.get("blacklist") and not _path_matches(raw_path, auth["blacklist"]):
        return AuthResult("jwt")
    lookups = _split_list(auth.get("tokenLookup") or DEFAULT_TOKEN_LOOKUP)
    token, header = _lookup_token(lookups, headers, raw_query)
    if token is None:
        where = ", ".join(repr(lookup) for lookup in lookups)  # quoted: a prefix ends with a space
        raise Unauthorized(f"a JWT is expected in {where} but is missing")
    if token != token.strip():
        raise Unauthorized(
            "invalid JWT: what follows the tokenLookup prefix starts or ends with whitespace (the prefix is "
            "stripped literally, so it must end with the space before the token)"
        )
    jwks = auth.get("jwks")
    if isinstance(jwks, str):
        try:
            jwks = json.loads(jwks)
        except ValueError:
            jwks = None
    if not isinstance(jwks, Mapping):
        raise Unauthorized("the trigger has no usable JWKS")
    try:
        claims = verify(token, jwks)
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the JWT has expired") from None
    except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
        raise Unauthorized(f"invalid JWT: {exc}") from None
    add_headers, add_query = _claims_passed(auth.get("claimPassBy"), claims)
    return AuthResult(
        "jwt",
        drop_headers=frozenset({header}) if header else frozenset(),
        add_headers=tuple(add_headers),
        add_query=tuple(add_query),
        claims=claims,
    )


def authenticate(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Any,
    read_body: Callable[[], bytes],
    config: Mapping[str, Any],
    credentials: Credentials,
) -> AuthResult:
    """Check a request against an HTTP trigger's config; raise an :class:`FCError` (401/403) or return what
    the proxy must drop and add. ``read_body`` is only called for ``function`` auth (the signature covers
    the body)."""
    auth_type = config.get("authType") or "function"
    if auth_type == "anonymous":
        return AuthResult("anonymous")
    if auth_type == "jwt":
        return _jwt(config, raw_path, raw_query, headers)
    if auth_type == "function":
        verify_request(method, raw_path, raw_query, headers, read_body(), credentials)
        return AuthResult("function", drop_headers=frozenset({"authorization"}))
    raise FCError(f"unsupported trigger authType {auth_type!r}", status=403, code="AccessDenied")


__all__ = ["AuthResult", "Unauthorized", "authenticate"]
