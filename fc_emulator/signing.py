"""ACS3-HMAC-SHA256 (Alibaba Cloud V3 signature) verification.

This mirrors ``alibabacloud_tea_openapi.utils.Utils.get_authorization`` exactly::

    CanonicalRequest = METHOD \\n CanonicalURI \\n CanonicalQuery \\n CanonicalHeaders \\n SignedHeaders
                       \\n hex(sha256(body))
    StringToSign     = "ACS3-HMAC-SHA256" \\n hex(sha256(CanonicalRequest))
    Signature        = hex(HMAC-SHA256(secret, StringToSign))

* CanonicalURI is the path exactly as sent (still percent-encoded), ``/`` when empty.
* CanonicalQuery: the SDK signs its query dict (keys raw and sorted, values ``quote(v, safe='~')``) but sends
  it through ``urlencode`` (``quote_plus``), so the verifier decodes the raw query with ``unquote_plus`` and
  re-encodes it the SDK's way.
* CanonicalHeaders: the headers named in the Authorization's ``SignedHeaders`` list (never a hard-coded list:
  the SDK signs every header it set, STS adds ``x-acs-accesskey-id``/``x-acs-security-token``), lower-cased,
  values stripped, duplicate values sorted and joined with ``,``.
* The payload hash is computed from the body actually received, and ``x-acs-content-sha256`` must equal it.

Signatures are compared with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from .exceptions import InvalidAccessKeyID, SignatureNotMatch

logger = logging.getLogger("fc_emulator")

ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

#: ``access key id -> secret`` or a callable returning the secret (``None`` when unknown).
Credentials = Mapping[str, str] | Callable[[str], "str | None"]


@dataclass(frozen=True)
class Authorization:
    algorithm: str
    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str | None) -> Authorization:
    """Parse ``ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=a;b,Signature=hex``."""
    if not value or not value.strip():
        raise SignatureNotMatch("the Authorization header is missing")
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureNotMatch(f"unsupported signature algorithm '{algorithm}', expected {ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if not sep:
            raise SignatureNotMatch("the Authorization header is malformed")
        fields[key.strip()] = val.strip()
    try:
        access_key_id = fields["Credential"]
        signed = fields["SignedHeaders"]
        signature = fields["Signature"]
    except KeyError as missing:
        raise SignatureNotMatch(f"the Authorization header has no {missing.args[0]}") from None
    if not access_key_id or not signed or not signature:
        raise SignatureNotMatch("the Authorization header is malformed")
    names = tuple(h.strip().lower() for h in signed.split(";"))
    if any(not n for n in names):
        raise SignatureNotMatch("the Authorization header has an empty SignedHeaders entry")
    return Authorization(algorithm, access_key_id, names, signature.lower())


def canonical_query_string(raw_query: str) -> str:
    """Canonical query of a raw (as sent) query string, matching ``get_canonical_query_string``."""
    if not raw_query:
        return ""
    params: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True, encoding="utf-8", errors="strict"):
        params[key] = value  # the SDK builds the query from a dict: one value per key
    return "&".join(f"{k}={quote(params[k], safe='~', encoding='utf-8')}" for k in sorted(params))


def header_values(headers: Any, name: str) -> list[str]:
    """All values of header ``name`` from an ``email.message.Message``, a mapping or ``(name, value)``
    pairs."""
    if hasattr(headers, "get_all"):
        return [str(v) for v in (headers.get_all(name) or [])]
    items: Iterable[tuple[str, str]] = headers.items() if isinstance(headers, Mapping) else headers
    lname = name.lower()
    return [str(v) for k, v in items if k.lower() == lname]


def canonical_request(
    method: str, raw_path: str, raw_query: str, headers: Any, signed_headers: Iterable[str], payload_hash: str
) -> str:
    names = sorted({h.lower() for h in signed_headers})
    canon_headers = ""
    for name in names:
        values = header_values(headers, name)
        if not values:
            raise SignatureNotMatch(f"the signed header '{name}' is missing from the request")
        canon_headers += f"{name}:{','.join(sorted(v.strip() for v in values))}\n"
    return (
        f"{method.upper()}\n{raw_path or '/'}\n{canonical_query_string(raw_query)}\n"
        f"{canon_headers}\n{';'.join(names)}\n{payload_hash}"
    )


def string_to_sign(canonical: str) -> str:
    return f"{ALGORITHM}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"


def compute_signature(secret: str, canonical: str) -> str:
    return hmac.new(
        secret.encode("utf-8"), string_to_sign(canonical).encode("utf-8"), hashlib.sha256
    ).hexdigest()


def sign(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Any,
    body: bytes,
    access_key_id: str,
    secret: str,
    signed_headers: Iterable[str] | None = None,
) -> str:
    """Return an Authorization header value for a request (signing all given headers by default)."""
    if signed_headers is None:
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        signed_headers = [k for k, _ in pairs]
    canonical = canonical_request(
        method, raw_path, raw_query, headers, signed_headers, hashlib.sha256(body).hexdigest()
    )
    names = ";".join(sorted({h.lower() for h in signed_headers}))
    return (
        f"{ALGORITHM} Credential={access_key_id},SignedHeaders={names},"
        f"Signature={compute_signature(secret, canonical)}"
    )


def _lookup_secret(credentials: Credentials, access_key_id: str) -> str | None:
    if callable(credentials):
        return credentials(access_key_id)
    return credentials.get(access_key_id)


def verify_request(
    method: str, raw_path: str, raw_query: str, headers: Any, body: bytes, credentials: Credentials
) -> str:
    """Verify a V3-signed request; return the access key id, or raise an FC 403 error.

    ``raw_path`` and ``raw_query`` are the request-target as sent (percent-encoded, split at ``?``);
    ``headers`` an ``email.message.Message`` (what ``http.server`` gives), a mapping or ``(name, value)``
    pairs.

    Raises :class:`InvalidAccessKeyID` for an unknown key id and :class:`SignatureNotMatch` for a missing or
    malformed Authorization, a body whose sha256 differs from ``x-acs-content-sha256``, or a bad signature.
    STS requests (``x-acs-accesskey-id``/``x-acs-security-token``) are checked against the same key pair;
    the security token itself is not validated.
    """
    auth_values = header_values(headers, "authorization")
    auth = parse_authorization(auth_values[0] if auth_values else None)
    secret = _lookup_secret(credentials, auth.access_key_id)
    if secret is None:
        raise InvalidAccessKeyID(auth.access_key_id)

    sts_ids = header_values(headers, "x-acs-accesskey-id")
    if sts_ids and sts_ids[0].strip() != auth.access_key_id:
        raise SignatureNotMatch(
            "x-acs-accesskey-id does not match the Credential of the Authorization header"
        )

    payload_hash = hashlib.sha256(body).hexdigest()
    declared = header_values(headers, "x-acs-content-sha256")
    if not declared:
        raise SignatureNotMatch("the x-acs-content-sha256 header is missing")
    if not hmac.compare_digest(declared[0].strip().lower(), payload_hash):
        raise SignatureNotMatch("x-acs-content-sha256 does not match the sha256 of the request body")

    try:
        canonical = canonical_request(method, raw_path, raw_query, headers, auth.signed_headers, payload_hash)
    except UnicodeDecodeError:
        raise SignatureNotMatch("the query string is not valid UTF-8") from None
    expected = compute_signature(secret, canonical)
    if not hmac.compare_digest(expected, auth.signature):
        sts = string_to_sign(canonical)
        logger.debug("signature mismatch for %s; canonical request:\n%s", auth.access_key_id, canonical)
        raise SignatureNotMatch(
            "The request signature we calculated does not match the signature you provided. "
            f"Check your AccessKey secret and signing method. Server string to sign is: {sts!r}"
        )
    return auth.access_key_id
