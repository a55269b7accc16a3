"""The FC 3.0 URL table (moto's ``url_paths``) and the per-action handlers (moto's ``responses.py``).

Patterns match the RAW request path (still percent-encoded, as signed); names captured from path segments
are decoded with :func:`urllib.parse.unquote` (the SDK encodes them with ``quote(s, safe='')``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from .exceptions import InvalidArgument, PathNotSupported
from .models import FCBackend

API_VERSION = "2023-03-30"
PREFIX = f"/{API_VERSION}"


@dataclass
class FCRequest:
    method: str
    raw_path: str
    raw_query: str
    body: bytes
    path_params: dict[str, str] = field(default_factory=dict)

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.raw_query, keep_blank_values=True))

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidArgument("the request body must be a JSON object")
        return data


#: A handler returns ``(status, body)``; ``body is None`` means an empty 204-style response.
Handler = Callable[[FCBackend, FCRequest], tuple[int, "dict[str, Any] | None"]]


@dataclass(frozen=True)
class Route:
    action: str
    method: str
    pattern: re.Pattern[str]
    handler: Handler


# handlers --------------------------------------------------------------------------------------------


def _create_function(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    return 200, backend.create_function(req.json())


def _get_function(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    return 200, backend.get_function(req.path_params["function"], req.query.get("qualifier"))


def _update_function(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    return 200, backend.update_function(req.path_params["function"], req.json())


def _delete_function(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    backend.delete_function(req.path_params["function"])
    return 204, None


def _list_functions(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    q = req.query
    return 200, backend.list_functions(
        prefix=q.get("prefix"), limit=q.get("limit"), next_token=q.get("nextToken")
    )


def _create_trigger(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    return 200, backend.create_trigger(req.path_params["function"], req.json())


def _get_trigger(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    return 200, backend.get_trigger(req.path_params["function"], req.path_params["trigger"])


def _update_trigger(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    return 200, backend.update_trigger(req.path_params["function"], req.path_params["trigger"], req.json())


def _delete_trigger(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    backend.delete_trigger(req.path_params["function"], req.path_params["trigger"])
    return 204, None


def _list_triggers(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    q = req.query
    return 200, backend.list_triggers(
        req.path_params["function"],
        prefix=q.get("prefix"),
        limit=q.get("limit"),
        next_token=q.get("nextToken"),
    )


def _publish_version(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    return 200, backend.publish_function_version(req.path_params["function"], req.json())


def _list_versions(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    q = req.query
    return 200, backend.list_function_versions(
        req.path_params["function"],
        direction=q.get("direction"),
        limit=q.get("limit"),
        next_token=q.get("nextToken"),
    )


def _delete_version(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    backend.delete_function_version(req.path_params["function"], req.path_params["version"])
    return 204, None


def _create_alias(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    return 200, backend.create_alias(req.path_params["function"], req.json())


def _get_alias(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    return 200, backend.get_alias(req.path_params["function"], req.path_params["alias"])


def _update_alias(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    return 200, backend.update_alias(req.path_params["function"], req.path_params["alias"], req.json())


def _list_aliases(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    q = req.query
    return 200, backend.list_aliases(
        req.path_params["function"],
        prefix=q.get("prefix"),
        limit=q.get("limit"),
        next_token=q.get("nextToken"),
    )


def _delete_alias(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    backend.delete_alias(req.path_params["function"], req.path_params["alias"])
    return 204, None


def _get_layer_version_by_arn(backend: FCBackend, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    return 200, backend.get_layer_version_by_arn(req.path_params["arn"])


# the table -------------------------------------------------------------------------------------------

_SEGMENT = "[^/?#]+"
_FUNCTIONS = rf"^{PREFIX}/functions/?\Z"
_FUNCTION = rf"^{PREFIX}/functions/(?P<function>{_SEGMENT})/?\Z"
_TRIGGERS = rf"^{PREFIX}/functions/(?P<function>{_SEGMENT})/triggers/?\Z"
_TRIGGER = rf"^{PREFIX}/functions/(?P<function>{_SEGMENT})/triggers/(?P<trigger>{_SEGMENT})/?\Z"
_VERSIONS = rf"^{PREFIX}/functions/(?P<function>{_SEGMENT})/versions/?\Z"
_VERSION = rf"^{PREFIX}/functions/(?P<function>{_SEGMENT})/versions/(?P<version>{_SEGMENT})/?\Z"
_ALIASES = rf"^{PREFIX}/functions/(?P<function>{_SEGMENT})/aliases/?\Z"
_ALIAS = rf"^{PREFIX}/functions/(?P<function>{_SEGMENT})/aliases/(?P<alias>{_SEGMENT})/?\Z"
_LAYER_ARN = rf"^{PREFIX}/layerarn/(?P<arn>{_SEGMENT})/?\Z"

ROUTES: tuple[Route, ...] = tuple(
    Route(action, method, re.compile(pattern), handler)
    for action, method, pattern, handler in (
        ("CreateFunction", "POST", _FUNCTIONS, _create_function),
        ("ListFunctions", "GET", _FUNCTIONS, _list_functions),
        ("GetFunction", "GET", _FUNCTION, _get_function),
        ("UpdateFunction", "PUT", _FUNCTION, _update_function),
        ("DeleteFunction", "DELETE", _FUNCTION, _delete_function),
        ("CreateTrigger", "POST", _TRIGGERS, _create_trigger),
        ("ListTriggers", "GET", _TRIGGERS, _list_triggers),
        ("GetTrigger", "GET", _TRIGGER, _get_trigger),
        ("UpdateTrigger", "PUT", _TRIGGER, _update_trigger),
        ("DeleteTrigger", "DELETE", _TRIGGER, _delete_trigger),
        ("PublishFunctionVersion", "POST", _VERSIONS, _publish_version),
        ("ListFunctionVersions", "GET", _VERSIONS, _list_versions),
        ("DeleteFunctionVersion", "DELETE", _VERSION, _delete_version),
        ("CreateAlias", "POST", _ALIASES, _create_alias),
        ("ListAliases", "GET", _ALIASES, _list_aliases),
        ("GetAlias", "GET", _ALIAS, _get_alias),
        ("UpdateAlias", "PUT", _ALIAS, _update_alias),
        ("DeleteAlias", "DELETE", _ALIAS, _delete_alias),
        ("GetLayerVersionByArn", "GET", _LAYER_ARN, _get_layer_version_by_arn),
    )
)

#: The SDK action names the emulator implements (valid fault-injection keys besides ``*``).
OPERATIONS: tuple[str, ...] = tuple(r.action for r in ROUTES)


def match(method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
    """Find the route of ``(method, raw path)``; path parameters come back decoded.

    Raises :class:`PathNotSupported` (404) for unknown paths and for known paths with another method.
    """
    for route in ROUTES:
        if route.method != method.upper():
            continue
        m = route.pattern.match(raw_path)
        if m:
            try:
                return route, {k: unquote(v, errors="strict") for k, v in m.groupdict().items()}
            except UnicodeDecodeError:
                raise InvalidArgument(f"the path {raw_path!r} is not valid percent-encoded UTF-8") from None
    raise PathNotSupported(method, raw_path)


def dispatch(backend: FCBackend, route: Route, req: FCRequest) -> tuple[int, dict[str, Any] | None]:
    return route.handler(backend, req)


def check_headers(route: Route, headers: Mapping[str, str] | Any) -> None:
    """``x-acs-version`` must be ``2023-03-30`` and ``x-acs-action`` must name the route's action."""
    version = headers.get("x-acs-version")
    if version != API_VERSION:
        raise InvalidArgument(f"x-acs-version must be '{API_VERSION}', got {version!r}")
    action = headers.get("x-acs-action")
    if action != route.action:
        raise InvalidArgument(
            f"x-acs-action {action!r} does not match the API '{route.action}' "
            f"of {route.method} {route.pattern.pattern}"
        )
