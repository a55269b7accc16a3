"""Errors as `application/problem+json` (RFC 9457).

Every error the API returns has `type`, `title`, `status`, `detail` and `instance`; validation errors add
`errors: [{field, rule, message}]`, where `rule` is the pydantic error type (our schemas name FC's rules,
e.g. `memory_range`, `cpu_memory_ratio`). The offending input is never echoed: it may be a secret value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_plus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.problem import FieldError

log = logging.getLogger("deployer.api")

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:mcp-fc:problem:"
MAX_BODY_BYTES = 1024 * 1024


class ProblemDetail(BaseModel):
    """The body of every error response (documentation model). Some add members, e.g. `deployment_id`."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        kind: str | None = None,
        title: str | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or "")
        self.status = status
        self.detail = detail
        self.type = TYPE_PREFIX + kind if kind else "about:blank"
        self.title = title or _phrase(status)
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})
        self.extensions = extensions


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    status: int,
    *,
    instance: str | None,
    detail: str | None = None,
    type_: str = "about:blank",
    title: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title or _phrase(status), "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = list(errors)
    for key, value in (extensions or {}).items():
        body.setdefault(key, value)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON)


def field_errors(errors: Iterable[Mapping[str, Any]], *, strip: str | None = "body") -> list[dict[str, str]]:
    """pydantic errors → [{field, rule, message}], without `input` or `ctx` (they can hold secrets)."""
    out = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ())]
        if strip and loc and loc[0] == strip:
            loc = loc[1:]
        out.append(
            {
                "field": ".".join(loc) or "body",
                "rule": str(err.get("type", "invalid")),
                "message": str(err.get("msg", "")),
            }
        )
    return out


def validation_problem(errors: list[dict[str, str]], *, status: int = 422) -> Problem:
    first = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return Problem(status, f"{first}{more}", kind="validation", title="Invalid request", errors=errors)


def from_validation_error(exc: ValidationError) -> Problem:
    """A pydantic ValidationError raised inside a route (e.g. a redeploy whose merged spec breaks a rule)."""
    return validation_problem(
        field_errors(exc.errors(include_input=False, include_context=False, include_url=False), strip=None)
    )


def _instance(request: Request) -> str:
    return request.url.path


async def _problem_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(
        exc.status,
        instance=_instance(request),
        detail=exc.detail,
        type_=exc.type,
        title=exc.title,
        errors=exc.errors,
        headers=exc.headers,
        extensions=exc.extensions,
    )


# FastAPI's answer when the body cannot even be decoded (invalid UTF-8, JSON nested too deep for the parser).
_UNPARSEABLE_BODY = "There was an error parsing the body"


def _malformed_body() -> Problem:
    return Problem(
        400,
        "the request body is not valid JSON",
        kind="malformed-json",
        errors=[{"field": "body", "rule": "json_invalid", "message": "JSON decode error"}],
    )


async def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSEABLE_BODY:
        return await _problem_handler(request, _malformed_body())
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != _phrase(exc.status_code) else None
    if exc.status_code == 404 and detail is None:
        detail = f"no route for {request.method} {request.url.path}"
    return problem_response(exc.status_code, instance=_instance(request), detail=detail, headers=exc.headers)


async def _request_validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in raw):
        problem = _malformed_body()
    else:
        problem = validation_problem(field_errors(raw))
    return await _problem_handler(request, problem)


def install(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _problem_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _request_validation_handler)


async def _send_problem(
    scope: Scope, receive: Receive, send: Send, status: int, detail: str, **kw: Any
) -> None:
    response = problem_response(status, instance=scope.get("path"), detail=detail, **kw)
    await response(scope, receive, send)


class UnexpectedErrorMiddleware:
    """Any exception a route did not turn into a problem → 500, logged with its traceback, text withheld."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if not started and is_database_unavailable(exc):
                # The CLI retries a 503 with Retry-After; a 500 would make it give up at once.
                log.warning(
                    "database unavailable in %r %r: %s",
                    scope.get("method"),
                    scope.get("path"),
                    type(exc).__name__,
                )
                await _send_problem(
                    scope,
                    receive,
                    send,
                    503,
                    "the database is unreachable; retry later",
                    type_=TYPE_PREFIX + "database-unavailable",
                    headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
                )
                return
            # %r: the path is the caller's text; escaped, a newline in it cannot forge a second log line.
            log.exception("unhandled error in %r %r", scope.get("method"), scope.get("path"))
            if started:
                raise
            await _send_problem(scope, receive, send, 500, "an internal error occurred; it has been logged")


DATABASE_RETRY_AFTER_S = 5


def is_database_unavailable(exc: BaseException) -> bool:
    """True for errors that mean the database could not be reached or went away (refused connection, pool
    timeout, a connection dropped mid-request), not for errors in what was asked of it."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no connection to give
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    return False


# C0 controls and DEL. NUL in a path or query value was a 500 on PostgreSQL (text cannot hold NUL) and the
# rest have no business in an id, a name or a cursor.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ControlCharacterMiddleware:
    """Refuse a path or query string that holds control characters (NUL, newline, ...) with a 400 problem,
    before any route, database or log line sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._offending(scope):
            await _send_problem(
                scope,
                receive,
                send,
                400,
                "the path or query string contains control characters (such as NUL or a newline)",
                type_=TYPE_PREFIX + "control-characters",
                errors=[{"field": "path", "rule": "no_control_chars", "message": "control characters"}],
            )
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _offending(scope: Scope) -> bool:
        if _CONTROL.search(scope.get("path", "")):
            return True
        query = scope.get("query_string", b"")
        if not query:
            return False
        try:
            text = unquote_plus(query.decode("latin-1"), errors="strict")
        except UnicodeDecodeError:
            return False  # not our concern here: the route's own parsing refuses it
        return bool(_CONTROL.search(text))


class BodyLimitMiddleware:
    """Refuse request bodies over `limit` bytes with a 413 problem, whether announced or streamed."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if length is None and not chunked:
            await self.app(scope, receive, send)
            return
        too_large = f"the request body is larger than {self.limit} bytes"
        if length is not None:
            try:
                announced = int(length)
            except ValueError:
                await _send_problem(scope, receive, send, 400, "invalid Content-Length")
                return
            if announced > self.limit:
                await _send_problem(scope, receive, send, 413, too_large)
                return
        # Buffer the (bounded) body, then replay it: the limit holds even when Content-Length lies.
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body = message.get("body", b"")
            total += len(body)
            if total > self.limit:
                await _send_problem(scope, receive, send, 413, too_large)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
