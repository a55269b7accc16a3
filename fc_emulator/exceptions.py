"""Typed Function Compute errors, in the style of moto's ``JsonRESTError``.

Each error carries the HTTP status, FC's error ``Code`` and a message, and renders the
FC 3.0 error body ``{"Code": ..., "Message": ..., "RequestId": ...}``. The SDK turns a
4xx into ``ClientException`` and a 5xx into ``ServerException``; a response carrying a
positive integer ``x-acs-retry-after`` header becomes ``ThrottlingException`` instead.
"""

from __future__ import annotations

import json
import os
import time


class FCError(Exception):
    """An error answered as an FC JSON error body."""

    status: int = 500
    code: str = "InternalServerError"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        #: Extra response headers (e.g. ``x-acs-retry-after`` for throttling).
        self.headers: dict[str, str] = dict(headers or {})

    def to_dict(self, request_id: str) -> dict[str, str]:
        return {"Code": self.code, "Message": self.message, "RequestId": request_id}

    def to_json(self, request_id: str) -> bytes:
        return json.dumps(self.to_dict(request_id)).encode("utf-8")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


# 400 ---------------------------------------------------------------------------------------------


class InvalidArgument(FCError):
    status = 400
    code = "InvalidArgument"


class EntityTooLarge(FCError):
    status = 400
    code = "EntityTooLarge"


# 403 ---------------------------------------------------------------------------------------------


class SignatureNotMatch(FCError):
    status = 403
    code = "SignatureNotMatch"


class InvalidAccessKeyID(FCError):
    status = 403
    code = "InvalidAccessKeyID"

    def __init__(self, access_key_id: str) -> None:
        super().__init__(f"the access key id '{access_key_id}' does not exist")


# 404 ---------------------------------------------------------------------------------------------


class PathNotSupported(FCError):
    status = 404
    code = "PathNotSupported"

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"the path '{path}' with method '{method}' is not supported")


class FunctionNotFound(FCError):
    status = 404
    code = "FunctionNotFound"

    def __init__(self, function_name: str) -> None:
        super().__init__(f"function '{function_name}' does not exist.")


class TriggerNotFound(FCError):
    status = 404
    code = "TriggerNotFound"

    def __init__(self, function_name: str, trigger_name: str) -> None:
        super().__init__(f"trigger '{trigger_name}' of function '{function_name}' does not exist.")


class VersionNotFound(FCError):
    status = 404
    code = "VersionNotFound"

    def __init__(self, function_name: str, version_id: str) -> None:
        super().__init__(f"version '{version_id}' of function '{function_name}' does not exist.")


class AliasNotFound(FCError):
    status = 404
    code = "AliasNotFound"

    def __init__(self, function_name: str, alias_name: str) -> None:
        super().__init__(f"alias '{alias_name}' of function '{function_name}' does not exist.")


# 405 (data plane only) ---------------------------------------------------------------------------


class MethodNotAllowed(FCError):
    status = 405
    code = "MethodNotAllowed"


# 409 / 412 ---------------------------------------------------------------------------------------


class FunctionAlreadyExists(FCError):
    status = 409
    code = "FunctionAlreadyExists"

    def __init__(self, function_name: str) -> None:
        super().__init__(f"function '{function_name}' already exists")


class TriggerAlreadyExists(FCError):
    status = 409
    code = "TriggerAlreadyExists"

    def __init__(self, function_name: str, trigger_name: str) -> None:
        super().__init__(f"trigger '{trigger_name}' of function '{function_name}' already exists")


class AliasAlreadyExists(FCError):
    status = 409
    code = "AliasAlreadyExists"

    def __init__(self, function_name: str, alias_name: str) -> None:
        super().__init__(f"alias '{alias_name}' of function '{function_name}' already exists")


class FunctionNotEmpty(FCError):
    status = 412
    code = "FunctionNotEmpty"

    def __init__(self, function_name: str, what: str = "active triggers") -> None:
        super().__init__(f"function '{function_name}' has {what}")


# 429 / 5xx ---------------------------------------------------------------------------------------


class Throttling(FCError):
    """429 with ``x-acs-retry-after`` so the SDK raises ``ThrottlingException(retry_after=...)``."""

    status = 429
    code = "Throttling"

    def __init__(
        self,
        retry_after: int = 1,
        message: str = "Request was denied due to user flow control.",
    ) -> None:
        retry_after = max(1, int(retry_after))
        super().__init__(message, headers={"x-acs-retry-after": str(retry_after)})
        self.retry_after = retry_after


class InternalServerError(FCError):
    status = 500
    code = "InternalServerError"


class FunctionNotReady(FCError):
    """Data plane: the function cannot serve requests (yet)."""

    status = 503
    code = "FunctionNotReady"


def new_request_id() -> str:
    """A request id in FC's shape, e.g. ``1-67fb352a-13c977c3-fcd79f7a7b63``."""
    return f"1-{int(time.time()):08x}-{os.urandom(4).hex()}-{os.urandom(6).hex()}"
