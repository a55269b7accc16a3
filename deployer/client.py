"""A small typed client for the mcp-fc HTTP API (what the CLI uses; usable from scripts too).

    with APIClient("http://127.0.0.1:8000", api_key) as api:
        dep = api.deploy({"name": "mcp-time", ...}, idempotency_key=str(uuid.uuid4()))
        dep = api.wait(dep.id, until=lambda d: d.status in TERMINAL)

Every HTTP failure becomes one of two exceptions:

- `APIError`: the API answered with an error (`application/problem+json`: status, title, detail, errors);
- `ServiceUnreachable`: no usable answer (connection refused, DNS, timeout, a garbled body).

Requests that cannot do harm twice are retried a few times on transport errors and 502/503/504: GETs,
DELETEs, cancels and deploys that carry an `Idempotency-Key` (the API answers a replay with the first
result). Any request is retried when the connection was never made, because then nothing was sent.

One module (~540 lines) on purpose: `APIClient` is the one HTTP client of the API, and its retry rules,
problem+json errors and SSE parsing are its contract; a script imports all of it from here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from deployer import __version__
from deployer.errors import ConfigError, MCPFCError
from schemas import Deployment, DeploymentPage, TaskView
from schemas.problem import FieldError

__all__ = [
    "APIClient",
    "APIError",
    "Event",
    "FieldError",
    "InvalidResponse",
    "Replaced",
    "ServiceUnreachable",
]

#: The User-Agent's version: the package's one `__version__` (the API and `mcp-fc --version` show it too).
VERSION = __version__

RETRY_STATUSES = frozenset({502, 503, 504})
# What the API answers a deploy that replaced a deployment with (deployer/api/routes/deployments.py).
REPLACED_HEADER, CHANGED_HEADER = "Mcpfc-Replaced", "Mcpfc-Changed-Fields"
UNCHANGED_HEADER, WARNING_HEADER = "Mcpfc-Unchanged", "Mcpfc-Warning"
MAX_RETRY_AFTER_S = 5.0

# Indirection so tests can run the retry/poll pacing without real waiting.
_sleep: Callable[[float], None] = time.sleep
_monotonic: Callable[[], float] = time.monotonic


class APIError(MCPFCError):
    """The API answered with an HTTP error (a problem+json document, or anything else we could read)."""

    code = "APIError"

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        errors: list[FieldError] | None = None,
        *,
        type: str | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors: list[FieldError] = list(errors or [])
        self.type = type
        super().__init__(self._summary())

    def _summary(self) -> str:
        if self.errors:
            return "; ".join(str(e) for e in self.errors)
        parts = [p for p in (self.title, self.detail) if p]
        if len(parts) == 2 and parts[1].lower().startswith(parts[0].lower()):
            parts = parts[1:]
        text = ": ".join(parts) or "error"
        return f"{text} (HTTP {self.status})"

    def __str__(self) -> str:
        return self.message

    @property
    def unavailable(self) -> bool:
        """A server-side failure (5xx): the service cannot do the work right now."""
        return self.status >= 500

    @classmethod
    def from_response(cls, response: httpx.Response) -> APIError:
        status = response.status_code
        title = response.reason_phrase or f"HTTP {status}"
        detail: str | None = None
        errors: list[FieldError] = []
        problem_type: str | None = None
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if isinstance(body, dict):
            title = str(body.get("title") or title)
            problem_type = body.get("type") if isinstance(body.get("type"), str) else None
            raw_detail = body.get("detail")
            if isinstance(raw_detail, list):  # FastAPI's own validation shape: {"detail": [{loc, msg, type}]}
                errors = _field_errors(raw_detail)
            elif raw_detail is not None:
                detail = str(raw_detail)
            if isinstance(body.get("errors"), list):
                errors = _field_errors(body["errors"])
        elif response.text.strip():
            detail = response.text.strip().splitlines()[0][:200]
        return cls(status, title, detail, errors, type=problem_type)


class ServiceUnreachable(MCPFCError):
    """No usable answer from the API: connection refused, DNS failure, timeout, broken stream."""

    code = "ServiceUnreachable"

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class InvalidResponse(ServiceUnreachable):
    """The API answered 2xx with a body that is not what the contract promises."""

    code = "InvalidResponse"


@dataclass(frozen=True)
class Replaced:
    """A deploy onto a name that had a deployment: the status it had and the spec fields the deploy changes;
    `unchanged`: the API's note when it changes nothing (no run was queued, no release made)."""

    status: str
    changed: list[str]
    unchanged: str | None = None


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of a deployment's progress; `data` is decoded JSON when it is JSON."""

    event: str
    data: Any
    id: str | None = None
    raw: str = field(default="", repr=False)


def _field_errors(items: list[Any]) -> list[FieldError]:
    """Normalise the error items of a 422 (`{field, rule, message}` or FastAPI's `{loc, type, msg}`)."""
    out: list[FieldError] = []
    for item in items:
        if not isinstance(item, dict):
            out.append(FieldError("", "", str(item)))
            continue
        loc = item.get("field", item.get("loc", ""))
        if isinstance(loc, list | tuple):
            parts = [str(p) for p in loc]
            if parts and parts[0] in ("body", "query", "path", "header"):
                parts = parts[1:]
            loc = ".".join(parts)
        rule = item.get("rule", item.get("type", ""))
        message = item.get("message", item.get("msg", ""))
        out.append(FieldError(str(loc or ""), str(rule or ""), str(message or "")))
    return out


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if "refused" in low:
        return "connection refused"
    if "name or service not known" in low or "nodename nor servname" in low or "getaddrinfo" in low:
        return "host name not resolved"
    return text.splitlines()[0]


class APIClient:
    """Synchronous client for `/v1`. Use it as a context manager (or call `close()`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        *,
        retries: int = 2,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        headers = {"Accept": "application/json", "User-Agent": f"mcp-fc/{VERSION}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        try:
            self._http = httpx.Client(
                base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
            )
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise ConfigError(f"the API URL {base_url!r} is not usable: {exc}") from None

    # -- plumbing ----------------------------------------------------------------------------------

    def __enter__(self) -> APIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _unreachable(self, exc: httpx.HTTPError) -> ServiceUnreachable:
        return ServiceUnreachable(
            f"cannot reach the mcp-fc API at {self.base_url}: {_reason(exc)}", url=self.base_url
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | float | None = None,
        idempotent: bool = False,
    ) -> httpx.Response:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            attempt += 1
            last = attempt > self.retries
            try:
                response = self._http.request(
                    method,
                    path,
                    params=params or None,
                    json=json_body,
                    headers=headers,
                    timeout=timeout if timeout is not None else self.timeout,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing reached the server: safe to try again for any method.
                if last:
                    raise self._unreachable(exc) from None
                _sleep(self.backoff_s * 2 ** (attempt - 1))
                continue
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise ConfigError(f"the API URL {self.base_url!r} is not usable: {exc}") from None
            except httpx.HTTPError as exc:
                # The request may have been processed: only repeat what cannot do harm twice.
                if last or not idempotent:
                    raise self._unreachable(exc) from None
                _sleep(self.backoff_s * 2 ** (attempt - 1))
                continue
            if response.status_code in RETRY_STATUSES and idempotent and not last:
                _sleep(self._retry_after(response, attempt))
                continue
            if response.status_code >= 400:
                raise APIError.from_response(response)
            return response

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        try:
            value = float(response.headers.get("Retry-After", ""))
            return min(max(value, 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            return self.backoff_s * 2 ** (attempt - 1)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise InvalidResponse(
                f"the API at {self.base_url} answered {response.status_code} without JSON", url=self.base_url
            ) from None

    def _deployment(self, response: httpx.Response) -> Deployment:
        data = self._json(response)
        try:
            return Deployment.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidResponse(
                f"the API at {self.base_url} answered with something that is not a Deployment "
                f"({where}: {first['msg']})",
                url=self.base_url,
            ) from None

    @staticmethod
    def _path(id_or_name: str, suffix: str = "") -> str:
        return f"/v1/deployments/{quote(id_or_name, safe='')}{suffix}"

    # -- deployments -------------------------------------------------------------------------------

    def deploy(self, body: dict[str, Any], idempotency_key: str | None = None) -> Deployment:
        """POST /v1/deployments. With an idempotency key the request is retried safely."""
        return self.deploy_replacing(body, idempotency_key)[0]

    def deploy_replacing(
        self, body: dict[str, Any], idempotency_key: str | None = None
    ) -> tuple[Deployment, Replaced | None]:
        """`deploy`, and what it replaced when the name already had a deployment (None for a new one)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self._request(
            "POST", "/v1/deployments", json_body=body, headers=headers, idempotent=bool(idempotency_key)
        )
        replaced = None
        if REPLACED_HEADER in response.headers:
            changed = response.headers.get(CHANGED_HEADER, "")
            replaced = Replaced(
                response.headers[REPLACED_HEADER],
                [f.strip() for f in changed.split(",") if f.strip()],
                response.headers.get(UNCHANGED_HEADER),
            )
        return self._deployment(response), replaced

    def redeploy(self, id_or_name: str, body: dict[str, Any]) -> Deployment:
        """POST /v1/deployments/{id}/redeploy with the fields to change."""
        return self._deployment(self._request("POST", self._path(id_or_name, "/redeploy"), json_body=body))

    def rotate_token(self, id_or_name: str) -> Deployment:
        """POST /v1/deployments/{id}/rotate-token: a new endpoint key and token (old tokens stop working)."""
        return self._deployment(self._request("POST", self._path(id_or_name, "/rotate-token")))

    def get(self, id_or_name: str, wait: float | None = None) -> Deployment:
        """GET /v1/deployments/{id}; `wait` long-polls up to that many seconds for a change."""
        timeout = None
        params: dict[str, Any] = {}
        if wait:
            params["wait"] = _num(wait)
            timeout = httpx.Timeout(self.timeout, read=self.timeout + wait)
        response = self._request(
            "GET", self._path(id_or_name), params=params, timeout=timeout, idempotent=True
        )
        return self._deployment(response)

    def list(
        self,
        status: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        health: str | None = None,
    ) -> DeploymentPage:
        """One page of GET /v1/deployments, newest first."""
        params = {"status": status, "name": name, "limit": limit, "cursor": cursor, "health": health}
        data = self._json(self._request("GET", "/v1/deployments", params=params, idempotent=True))
        try:
            return DeploymentPage.model_validate(data)
        except ValidationError:
            raise InvalidResponse(
                f"the API at {self.base_url} answered with something that is not a page of deployments",
                url=self.base_url,
            ) from None

    def list_all(
        self,
        status: str | None = None,
        name: str | None = None,
        *,
        page_size: int = 100,
        max_items: int = 1000,
        health: str | None = None,
    ) -> tuple[list[Deployment], bool]:
        """Follow `next_cursor` until the end or `max_items`; returns (items, truncated)."""
        items: list[Deployment] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = self.list(
                status=status,
                name=name,
                limit=min(page_size, max_items - len(items)),
                cursor=cursor,
                health=health,
            )
            items.extend(page.items)
            if not page.next_cursor:
                return items, False
            if len(items) >= max_items:
                return items[:max_items], True
            if page.next_cursor in seen or not page.items:  # a server that loops would otherwise spin
                return items, True
            seen.add(page.next_cursor)
            cursor = page.next_cursor

    def delete(self, id_or_name: str) -> Deployment:
        """DELETE /v1/deployments/{id}: tear down trigger then function (ends `deleted`)."""
        return self._deployment(self._request("DELETE", self._path(id_or_name), idempotent=True))

    def cancel(self, id_or_name: str) -> Deployment:
        """POST /v1/deployments/{id}/cancel: stop a pending or running deploy."""
        return self._deployment(self._request("POST", self._path(id_or_name, "/cancel"), idempotent=True))

    def rollback(self, id_or_name: str, to: str | None = None) -> Deployment:
        """POST /v1/deployments/{id}/rollback: move `live` to version `to` (default: the previous one)."""
        body = {"to": to} if to else None
        return self._deployment(self._request("POST", self._path(id_or_name, "/rollback"), json_body=body))

    def versions(self, id_or_name: str) -> dict[str, Any]:
        """GET /v1/deployments/{id}/versions: the published versions and which one is live."""
        return self._json(self._request("GET", self._path(id_or_name, "/versions"), idempotent=True))

    def reconcile(self, id_or_name: str) -> Deployment:
        """POST /v1/deployments/{id}/reconcile: write the deployment's spec to FC again (config drift)."""
        return self._deployment(self._request("POST", self._path(id_or_name, "/reconcile")))

    def logs(
        self,
        id_or_name: str,
        *,
        since: str | None = None,
        tail: int | None = None,
        after: str | None = None,
    ) -> dict[str, Any]:
        """GET /v1/deployments/{id}/logs: one page of the MCP server's own output (`lines`, `cursor`);
        `after` is the cursor of the previous page."""
        params = {"since": since, "tail": tail, "after": after}
        return self._json(
            self._request("GET", self._path(id_or_name, "/logs"), params=params, idempotent=True)
        )

    def client_config(self, id_or_name: str) -> dict[str, Any]:
        """GET /v1/deployments/{id}/client-config: `{"mcpServers": {name: {"url", "headers"}}}`."""
        return self.client_config_warned(id_or_name)[0]

    def client_config_warned(self, id_or_name: str) -> tuple[dict[str, Any], str | None]:
        """`client_config`, and the API's warning (`Mcpfc-Warning`: e.g. the last deploy failed while
        `live` still serves an earlier version)."""
        response = self._request("GET", self._path(id_or_name, "/client-config"), idempotent=True)
        data = self._json(response)
        if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
            raise InvalidResponse(
                f"the API at {self.base_url} answered without an mcpServers object", url=self.base_url
            )
        return data, response.headers.get(WARNING_HEADER)

    def events(
        self, id_or_name: str, *, run: str | None = None, read_timeout: float = 90.0
    ) -> Iterator[Event]:
        """GET /v1/deployments/{id}/events: the Server-Sent Events of one run's progress (the current run,
        or `run`, a task id), from its start, as they come."""
        from httpx_sse import SSEError, connect_sse

        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        try:
            with connect_sse(
                self._http,
                "GET",
                self._path(id_or_name, "/events"),
                params={"run": run} if run else None,
                timeout=timeout,
                headers={"Accept": "text/event-stream"},
            ) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    raise APIError.from_response(source.response)
                for sse in source.iter_sse():
                    try:
                        data: Any = json.loads(sse.data) if sse.data else None
                    except ValueError:
                        data = sse.data
                    yield Event(event=sse.event or "message", data=data, id=sse.id or None, raw=sse.data)
        except SSEError as exc:
            raise InvalidResponse(
                f"the API at {self.base_url} did not answer with an event stream: {exc}"
            ) from None
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def wait(
        self,
        id_or_name: str,
        *,
        until: Callable[[Deployment], bool],
        on_update: Callable[[Deployment], None] | None = None,
        current: Deployment | None = None,
        poll_s: float = 20.0,
        min_interval_s: float = 1.0,
        deadline_s: float | None = None,
    ) -> Deployment:
        """Long-poll `GET ?wait=poll_s` until `until(deployment)` holds; `on_update` sees every answer.

        A server that ignores `wait` (or answers early without a change) is paced at `min_interval_s`.
        """
        dep = current if current is not None else self.get(id_or_name)
        if on_update:
            on_update(dep)
        started = _monotonic()
        while not until(dep):
            if deadline_s is not None and _monotonic() - started > deadline_s:
                raise ServiceUnreachable(
                    f"deployment {dep.name} is still {dep.status.value} after {deadline_s:.0f}s of waiting",
                    url=self.base_url,
                )
            asked = _monotonic()
            new = self.get(dep.id, wait=poll_s)
            unchanged = _fingerprint(new) == _fingerprint(dep)
            dep = new
            if on_update:
                on_update(dep)
            if unchanged and not until(dep):
                spent = _monotonic() - asked
                if spent < min_interval_s:
                    _sleep(min_interval_s - spent)
        return dep

    def service_info(self) -> dict[str, Any]:
        """GET /v1/service: default region, FC's regions, whether FC is the local emulator (and its default
        image). An API too old to have the route answers as a service on Alibaba Cloud would."""
        try:
            data = self._json(self._request("GET", "/v1/service", idempotent=True))
        except APIError as exc:
            if exc.status != 404:
                raise
            return {"fc_local": False, "default_image": None}
        return data if isinstance(data, dict) else {"fc_local": False, "default_image": None}

    # -- tasks -------------------------------------------------------------------------------------

    def task(self, task_id: str) -> TaskView:
        """GET /v1/tasks/{task_id}: Celery's view of a task."""
        data = self._json(self._request("GET", f"/v1/tasks/{task_id}", idempotent=True))
        try:
            return TaskView.model_validate(data)
        except ValidationError:
            raise InvalidResponse(
                f"the API at {self.base_url} answered with something that is not a task view"
            ) from None


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _fingerprint(dep: Deployment) -> tuple[Any, ...]:
    return (dep.status, dep.stage, dep.progress, dep.updated_at)
