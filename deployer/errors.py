"""Every error mcp-fc raises on purpose, in one hierarchy (the classes outside this module say where).

    MCPFCError                                           CLI exit code (deployer/cli/base.py: exit_code)
    ├── ConfigError            settings that cannot work (e.g. a default secret key    2
    │                          in production, an unusable API URL)
    ├── SpecError              a request the spec builder (or an mcp.json) cannot      2
    │                          turn into FC input
    ├── InputError             (deployer/cli/input.py) what the user typed or the      2
    │                          file says cannot be sent; carries FieldErrors
    ├── APIError               (deployer/client.py) the API answered an HTTP error:    2, or 3 for a 5xx
    │                          status, problem type, detail, FieldErrors
    ├── ServiceUnreachable     (deployer/client.py) no usable answer from the API      3
    │   └── InvalidResponse    a 2xx whose body is not what the contract promises      3
    ├── DeploymentFailed       a deployment ended failed or cancelled, or has no       1
    │                          usable endpoint
    ├── FCError                Function Compute said no, or could not be reached (worker side; its code,
    │   │                      message and request id become the deployment's `error`, error_payload)
    │   ├── FCAlreadyExists    409 FunctionAlreadyExists / TriggerAlreadyExists
    │   ├── FCNotFound         404 FunctionNotFound / TriggerNotFound
    │   ├── FCConflict         FunctionNotEmpty, PreconditionFailed
    │   │   └── FCConcurrentUpdate ConcurrentUpdateError: another update is under way (retryable)
    │   ├── FCInvalidArgument  400 InvalidArgument and other 4xx the caller must fix
    │   ├── FCAccessDenied     403 AccessDenied / SignatureNotMatch / InvalidAccessKeyID
    │   ├── FCThrottled        429 or x-acs-retry-after            (retryable)
    │   ├── FCServerError      5xx                                 (retryable)
    │   └── FCUnreachable      transport failure, timeout, garbled answer (retryable)
    ├── LogsUnavailable        a deployment's own output cannot be read (no log config, SLS said no)
    └── DeployError            a deploy step failed for a reason of ours (timeout, function Failed, probe)
        └── BuildError         an image-less package could not be resolved, installed or packed (with the
                               tool's own output; before any FC call)

    FieldError (schemas/problem.py) is not an exception: one broken rule of a rejected request.
    Not part of the hierarchy, on purpose: fc_emulator.exceptions.FCError is the *emulator's* FC
    error answer (a wire document the fake server renders, never raised to a user);
    deployer.store.lifecycle.NameTaken, deployer.client_configs.BadDocument and
    deployer.cli.devstack.DevStackRefused / DemoRefused are caught and turned into one of the above (or an
    HTTP 409) where they are raised.

Messages never carry secret values: FC messages are kept, SDK `str()` dumps (which include the whole
response) are not.
"""

from __future__ import annotations

from typing import Any

from deployer.failure_text import keep_end, short_failure


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


class BuildError(DeployError):
    """An image-less deploy's package could not be resolved, installed or packed (deployer/build). Its message
    ends with the tail of the tool's own output (npm's, uv's), credentials masked; nothing was sent to FC."""

    code = "BuildFailed"

    def __init__(self, message: str, *, code: str | None = None, output: str = "") -> None:
        super().__init__(message, code=code, step="build")
        self.output = output


class DeploymentFailed(MCPFCError):
    """The deployment (or its deletion) ended in failure: the CLI exits 1."""

    code = "DeploymentFailed"


def error_body(
    code: str, message: str, *, step: str | None, retryable: bool = False, request_id: str | None = None
) -> dict[str, Any]:
    """The `error` field of a deployment (schemas.DeploymentError's shape): the one place it is built."""
    return {
        "code": code,
        "message": message,
        "retryable": retryable,
        "request_id": request_id,
        "step": step,
    }


def error_payload(exc: BaseException, step: str) -> dict[str, Any]:
    """The `error` of a deployment whose step raised exc. Messages are ours or FC's, never an SDK dump."""
    if isinstance(exc, FCError):
        return error_body(
            exc.code, keep_end(exc.message), step=step, retryable=exc.retryable, request_id=exc.request_id
        )
    if isinstance(exc, DeployError):
        # A deploy's failure is read first in `status`: its cause in one line, the server's last lines once.
        message = short_failure(exc.message)
        return error_body(exc.code, message, step=exc.step or step, retryable=exc.retryable)
    if isinstance(exc, MCPFCError):
        return error_body(exc.code, keep_end(exc.message), step=step)
    # Unexpected: keep the type only; the traceback goes to the worker log.
    return error_body(
        "InternalError", f"unexpected {type(exc).__name__} in step {step}", step=step, retryable=True
    )


class LogsUnavailable(MCPFCError):
    """A deployment's runtime logs cannot be read: it ships none (409), a bad cursor (400), or Simple Log
    Service failed (502)."""

    code = "LogsUnavailable"

    def __init__(self, message: str, *, status: int = 502) -> None:
        super().__init__(message)
        self.status = status
