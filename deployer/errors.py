"""Every error mcp-fc raises on purpose, in one hierarchy.

    MCPFCError
    ├── ConfigError            settings that cannot work (e.g. a default secret key in production)
    ├── SpecError              a request the spec builder cannot turn into FC input
    ├── FCError                Function Compute said no, or could not be reached
    │   ├── FCAlreadyExists    409 FunctionAlreadyExists / TriggerAlreadyExists
    │   ├── FCNotFound         404 FunctionNotFound / TriggerNotFound
    │   ├── FCConflict         FunctionNotEmpty, PreconditionFailed
    │   │   └── FCConcurrentUpdate ConcurrentUpdateError: another update is under way (retryable)
    │   ├── FCInvalidArgument  400 InvalidArgument and other 4xx the caller must fix
    │   ├── FCAccessDenied     403 AccessDenied / SignatureNotMatch / InvalidAccessKeyID
    │   ├── FCThrottled        429 or x-acs-retry-after            (retryable)
    │   ├── FCServerError      5xx                                 (retryable)
    │   └── FCUnreachable      transport failure, timeout, garbled answer (retryable)
    ├── DeployError            a deploy step failed for a reason of ours (timeout, function Failed, probe)
    ├── LogsUnavailable        a deployment's own output cannot be read (no log config, SLS said no)
    └── DeploymentFailed       (CLI) a deployment ended failed or cancelled, or has no usable endpoint: exit 1

Messages never carry secret values: FC messages are kept, SDK `str()` dumps (which include the whole
response) are not.
"""

from __future__ import annotations


class MCPFCError(Exception):
    code = "MCPFCError"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(MCPFCError):
    code = "ConfigError"


class SpecError(MCPFCError):
    code = "SpecError"


class FCError(MCPFCError):
    """An answer (or the lack of one) from the FC control plane."""

    code = "FCError"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code
        self.request_id = request_id
        self.operation = operation

    def __str__(self) -> str:
        where = f"{self.operation}: " if self.operation else ""
        status = f" (HTTP {self.status_code})" if self.status_code else ""
        rid = f" [request {self.request_id}]" if self.request_id else ""
        return f"{where}{self.code}{status}: {self.message}{rid}"


class FCAlreadyExists(FCError):
    code = "AlreadyExists"


class FCNotFound(FCError):
    code = "NotFound"


class FCConflict(FCError):
    code = "Conflict"


class FCConcurrentUpdate(FCConflict):
    """Another update of the same function is in progress; it passes by itself, so retry with backoff."""

    code = "ConcurrentUpdateError"
    retryable = True


class FCInvalidArgument(FCError):
    code = "InvalidArgument"


class FCAccessDenied(FCError):
    code = "AccessDenied"


class FCThrottled(FCError):
    code = "Throttling"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class FCServerError(FCError):
    code = "InternalServerError"
    retryable = True


class FCUnreachable(FCError):
    code = "Unreachable"
    retryable = True


class DeployError(MCPFCError):
    code = "DeployFailed"

    def __init__(
        self, message: str, *, code: str | None = None, step: str | None = None, retryable: bool = False
    ):
        super().__init__(message, code=code)
        self.step = step
        self.retryable = retryable


class DeploymentFailed(MCPFCError):
    """The deployment (or its deletion) ended in failure: the CLI exits 1."""

    code = "DeploymentFailed"


class LogsUnavailable(MCPFCError):
    """A deployment's runtime logs cannot be read: it ships none (409), a bad cursor (400), or Simple Log
    Service failed (502)."""

    code = "LogsUnavailable"

    def __init__(self, message: str, *, status: int = 502) -> None:
        super().__init__(message)
        self.status = status
