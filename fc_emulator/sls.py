"""Simple Log Service ``GetLogs`` (API 2020-12-30), answered from the instances' kept output.

The official SDK (``alibabacloud-sls20201230`` with its gateway ``alibabacloud-gateway-sls``) sends
``POST /logstores/{logstore}/logs`` to ``{project}.{endpoint}`` with a JSON body (``from``, ``to``,
``query``, ``line``, ``offset``, ``reverse``, ``topic``) and expects ``{"meta": {...}, "data": [{...}]}``.
A project is a subdomain, which a loopback address cannot carry: a client points its SDK at
``endpoint=127.0.0.1:PORT`` with this emulator as its HTTP proxy too (``http_proxy=http://127.0.0.1:PORT``),
so the request arrives in absolute form (``POST http://proj.127.0.0.1:PORT/logstores/...``) and the project
is the first label of that host, exactly as SLS reads it from ``Host``.

Signature checks are as strict as the FC routes' (:mod:`fc_emulator.signing`), for SLS's own scheme,
the SDK's default (its "v1"; the gateway's ``get_signature``)::

    StringToSign = VERB \\n CONTENT-MD5 \\n CONTENT-TYPE \\n DATE \\n
                   every header whose lower-cased name contains x-log- or x-acs-, sorted, as name:value \\n
                   PATH [? sorted key=value pairs joined by &]
    Authorization = "LOG " AccessKeyId ":" base64(HMAC-SHA256(secret, StringToSign))   (hmac-sha1 when
                    x-log-signaturemethod is not hmac-sha256)

``Content-MD5`` (upper-case hex) must be the md5 of the body received, ``x-log-bodyrawsize`` its length (no
compression is accepted), ``x-log-apiversion`` ``0.6.0``, and ``Date`` within 15 minutes of now. The "v4"
scheme (``SLS4-HMAC-SHA256``, opt-in in the SDK) is refused with a clear error. Errors are SLS's shape
``{"errorCode", "errorMessage"}`` with ``x-log-requestid``.

What the store holds (:mod:`fc_emulator.logstore`): every function's output is in project
:data:`~fc_emulator.logstore.DEFAULT_PROJECT`, logstore
:data:`~fc_emulator.logstore.DEFAULT_LOGSTORE`; a function whose ``logConfig`` names a project and
logstore has its output there as well. A log has the keys ``functionName``, ``qualifier``, ``instanceId``,
``stream`` (``stdout``/``stderr``), ``message``, ``__time__``, ``__time_ns_part__``, ``__topic__`` (empty)
and ``__source__``. The query language is a small part of SLS's: ``*``, ``key: value`` (quoted or not) and
bare terms (a word of ``message``), joined by ``and``; anything else is ``ParameterInvalid``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .exceptions import FCError, new_request_id
from .logstore import DEFAULT_LOGSTORE, DEFAULT_PROJECT, LogRecord, LogStore
from .signing import header_values

API_VERSION = "0.6.0"
#: SLS's largest page of GetLogs.
MAX_LINES = 100
MAX_CLOCK_SKEW_S = 15 * 60
_PATH = re.compile(r"^/logstores/(?P<logstore>[^/?#]+)/logs/?\Z")


class SLSError(FCError):
    """An SLS error answer: ``{"errorCode", "errorMessage"}`` and ``x-log-requestid``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, status=status, code=code)

    def to_dict(self, request_id: str) -> dict[str, str]:
        self.headers.setdefault("x-log-requestid", request_id)
        return {"errorCode": self.code, "errorMessage": self.message}


def is_sls_request(raw_path: str) -> bool:
    return raw_path.startswith("/logstores/")


def split_target(target: str) -> tuple[str, str, str | None]:
    """``(raw path, raw query, host or None)`` of a request target, origin form or absolute form (what a
    client that uses the emulator as its HTTP proxy sends)."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return parts.path or "/", parts.query, parts.netloc
    path, _, query = target.partition("?")
    return path, query, None


def project_of(host: str, endpoint_hosts: set[str]) -> str:
    """The project label in front of the emulator's own address (``proj.127.0.0.1:PORT`` -> ``proj``)."""
    host = host.strip().lower()
    for own in endpoint_hosts:
        if host == own or host == own.rsplit(":", 1)[0]:
            raise SLSError(400, "ProjectNotExist", "the request names no project (Host has no project label)")
        for suffix in (f".{own}", f".{own.rsplit(':', 1)[0]}"):
            if host.endswith(suffix):
                return host[: -len(suffix)]
    raise SLSError(400, "ProjectNotExist", f"the host {host!r} is not a project of this endpoint")


# signature -----------------------------------------------------------------------------------------------


def string_to_sign(method: str, raw_path: str, raw_query: str, headers: Any) -> str:
    def one(name: str) -> str:
        values = header_values(headers, name)
        return values[0] if values else ""

    names = sorted(
        {k.lower() for k in _header_names(headers) if "x-log-" in k.lower() or "x-acs-" in k.lower()}
    )
    canon_headers = "".join(f"{n}:{one(n)}\n" for n in names)
    resource = raw_path
    params = dict(parse_qsl(raw_query, keep_blank_values=True))
    if params:
        resource += "?" + "&".join(f"{k}={params[k]}" for k in sorted(params))
    return (
        f"{method.upper()}\n{one('content-md5')}\n{one('content-type')}\n{one('date')}\n"
        f"{canon_headers}{resource}"
    )


def _header_names(headers: Any) -> list[str]:
    if hasattr(headers, "keys"):
        return [str(k) for k in headers.keys()]
    return [str(k) for k, _ in headers]


def signature(secret: str, text: str, method: str = "hmac-sha256") -> str:
    digest = hashlib.sha256 if method == "hmac-sha256" else hashlib.sha1
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), digest).digest()).decode()


def verify(
    method: str, raw_path: str, raw_query: str, headers: Any, body: bytes, credentials: Mapping[str, str]
) -> str:
    """Check an SLS-signed request; return the access key id or raise :class:`SLSError`."""
    auth = (header_values(headers, "authorization") or [""])[0].strip()
    if auth.startswith("SLS4-HMAC-SHA256"):
        raise SLSError(
            401, "SignatureNotMatch", "the emulator checks SLS's default signature (LOG ak:signature), not v4"
        )
    scheme, _, rest = auth.partition(" ")
    key_id, sep, given = rest.partition(":")
    if scheme != "LOG" or not sep or not key_id or not given:
        raise SLSError(401, "Unauthorized", "the Authorization header is missing or not 'LOG <ak>:<sig>'")
    secret = credentials.get(key_id)
    if secret is None:
        raise SLSError(401, "Unauthorized", f"AccessKeyId {key_id!r} not found")
    version = (header_values(headers, "x-log-apiversion") or [""])[0]
    if version != API_VERSION:
        raise SLSError(400, "InvalidAPIVersion", f"x-log-apiversion must be {API_VERSION!r}, got {version!r}")
    if header_values(headers, "x-log-compresstype"):
        raise SLSError(400, "ParameterInvalid", "the emulator accepts uncompressed request bodies only")
    raw_size = (header_values(headers, "x-log-bodyrawsize") or [""])[0]
    if raw_size != str(len(body)):
        raise SLSError(400, "ParameterInvalid", f"x-log-bodyrawsize {raw_size!r} is not the body's length")
    declared_md5 = (header_values(headers, "content-md5") or [""])[0]
    if body and not hmac.compare_digest(declared_md5, hashlib.md5(body).hexdigest().upper()):  # noqa: S324
        raise SLSError(400, "InvalidContentMD5", "Content-MD5 does not match the md5 of the request body")
    date = (header_values(headers, "date") or [""])[0]
    try:
        sent = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, IndexError):
        raise SLSError(
            400, "RequestTimeExpired", f"the Date header {date!r} is missing or malformed"
        ) from None
    if abs(time.time() - sent) > MAX_CLOCK_SKEW_S:
        raise SLSError(400, "RequestTimeExpired", "the Date header is more than 15 minutes from now")
    sig_method = (header_values(headers, "x-log-signaturemethod") or ["hmac-sha1"])[0]
    expected = signature(secret, string_to_sign(method, raw_path, raw_query, headers), sig_method)
    if not hmac.compare_digest(expected, given):
        raise SLSError(
            401,
            "SignatureNotMatch",
            "signature mismatch: check the AccessKey secret and the signing of the request",
        )
    return key_id


# the query -----------------------------------------------------------------------------------------------

_TERM = re.compile(r'^\s*(?:(?P<key>[A-Za-z_][\w.]*)\s*:\s*)?(?:"(?P<quoted>[^"]*)"|(?P<bare>[^\s"]+))\s*$')
_FIELDS = {
    "functionName": lambda r: r.function,
    "qualifier": lambda r: r.qualifier,
    "instanceId": lambda r: r.instance_id,
    "stream": lambda r: r.stream,
    "message": lambda r: r.message,
}


def compile_query(query: str | None) -> list[tuple[str | None, str]]:
    """``[(key or None, value)]``, all of which must hold; raises ``ParameterInvalid`` for the rest."""
    query = (query or "").strip()
    if "|" in query:
        raise SLSError(400, "ParameterInvalid", "the emulator does not run SQL (the part after '|')")
    terms: list[tuple[str | None, str]] = []
    for part in re.split(r"\s+and\s+", query, flags=re.IGNORECASE) if query and query != "*" else []:
        match = _TERM.match(part)
        if part.strip() == "*":
            continue
        if match is None or part.strip().lower() in ("or", "not"):
            raise SLSError(400, "ParameterInvalid", f"the emulator cannot run the query term {part!r}")
        key = match.group("key")
        if key is not None and key not in _FIELDS:
            raise SLSError(400, "ParameterInvalid", f"unknown key {key!r} in the query")
        terms.append(
            (key, match.group("quoted") if match.group("quoted") is not None else match.group("bare"))
        )
    return terms


def _matches(record: LogRecord, terms: list[tuple[str | None, str]]) -> bool:
    for key, value in terms:
        if key is None:
            if value.lower() not in record.message.lower():
                return False
        elif key == "message":
            if value.lower() not in record.message.lower():
                return False
        elif _FIELDS[key](record) != value:
            return False
    return True


def to_log(record: LogRecord) -> dict[str, str]:
    seconds, ns = divmod(record.time_ns, 1_000_000_000)
    return {
        "__time__": str(seconds),
        "__time_ns_part__": str(ns),
        "__topic__": "",
        "__source__": "fc-emulator",
        "functionName": record.function,
        "qualifier": record.qualifier,
        "instanceId": record.instance_id,
        "stream": record.stream,
        "message": record.message,
    }


# GetLogs -------------------------------------------------------------------------------------------------


def _int(body: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        if value is None:
            raise SLSError(400, "ParameterInvalid", f"{key} is required")
        raise SLSError(400, "ParameterInvalid", f"{key} must be an integer")
    return value


def get_logs(
    store: LogStore,
    project: str,
    logstore: str,
    body: bytes,
    *,
    known: set[tuple[str, str]],
) -> dict[str, Any]:
    """The GetLogs answer body for ``project``/``logstore`` (``known``: the pairs that exist)."""
    if (project, logstore) != (DEFAULT_PROJECT, DEFAULT_LOGSTORE) and (project, logstore) not in known:
        if project != DEFAULT_PROJECT and not any(p == project for p, _ in known):
            raise SLSError(404, "ProjectNotExist", f"Project {project} does not exist")
        raise SLSError(404, "LogStoreNotExist", f"logstore {logstore} does not exist")
    try:
        params = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise SLSError(400, "ParameterInvalid", "the request body is not JSON") from None
    if not isinstance(params, dict):
        raise SLSError(400, "ParameterInvalid", "the request body must be a JSON object")
    start, end = _int(params, "from"), _int(params, "to")
    if start > end:
        raise SLSError(400, "ParameterInvalid", "from must not be later than to")
    line = _int(params, "line", MAX_LINES)
    offset = _int(params, "offset", 0)
    if not 0 <= line <= MAX_LINES or offset < 0:
        raise SLSError(400, "ParameterInvalid", f"line must be 0..{MAX_LINES} and offset >= 0")
    terms = compile_query(params.get("query"))
    topic = params.get("topic")
    everything = (project, logstore) == (DEFAULT_PROJECT, DEFAULT_LOGSTORE)
    started = time.monotonic()
    found = store.records(
        from_ns=start * 1_000_000_000,
        to_ns=end * 1_000_000_000,
        keep=lambda r: (
            (everything or r.destination == (project, logstore)) and not topic and _matches(r, terms)
        ),
    )
    if params.get("reverse"):
        found.reverse()
    page = [to_log(r) for r in found[offset : offset + line]]
    return {
        "meta": {
            "progress": "Complete",
            "count": len(page),
            "processedRows": len(found),
            "elapsedMillisecond": int((time.monotonic() - started) * 1000),
            "hasSQL": False,
            "isAccurate": True,
            "whereQuery": params.get("query") or "*",
            "aggQuery": "",
            "keys": sorted(page[0]) if page else [],
        },
        "data": page,
    }


def handle(
    *,
    method: str,
    target: str,
    headers: Any,
    body: bytes,
    credentials: Mapping[str, str],
    store: LogStore,
    endpoint_hosts: set[str],
    known: set[tuple[str, str]],
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One SLS request: ``(status, body, headers)``; raises :class:`SLSError`."""
    raw_path, raw_query, target_host = split_target(target)
    match = _PATH.match(raw_path)
    if match is None or method.upper() != "POST":
        raise SLSError(
            404, "ActionNotExist", f"the emulator's SLS answers GetLogs only, not {method} {raw_path}"
        )
    verify(method, raw_path, raw_query, headers, body, credentials)
    host = target_host or (header_values(headers, "host") or [""])[0]
    project = project_of(host, endpoint_hosts)
    answer = get_logs(store, project, match.group("logstore"), body, known=known)
    request_id = new_request_id()
    return (
        200,
        answer,
        {
            "x-log-requestid": request_id,
            "x-log-progress": "Complete",
            "x-log-count": str(answer["meta"]["count"]),
        },
    )
