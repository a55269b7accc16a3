"""The FC 3.0 control plane through the official SDK, with typed errors and bounded retries.

Only Celery tasks use this module. Every method returns the SDK response's `to_map()` (headers,
statusCode, body with camelCase keys), the shape stored in a deployment's `result`.

Idempotence under lost responses: a create whose response was lost is retried, gets AlreadyExists and
turns into an update; a delete whose response was lost is retried and gets NotFound, which counts as
done. So each create-or-update converges to exactly one function and one trigger.

One module (~550 lines) on purpose: `FCGateway` is the only code that calls the SDK, so every FC action,
the retry policy and the SDK-error to typed-error mapping are read together when FC's behaviour changes.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from alibabacloud_fc20230330 import models as fc
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi import models as open_api
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException
from darabonba.exceptions import DaraException, UnretryableException
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from deployer.errors import (
    FCAccessDenied,
    FCAlreadyExists,
    FCConcurrentUpdate,
    FCConflict,
    FCError,
    FCInvalidArgument,
    FCNotFound,
    FCServerError,
    FCThrottled,
    FCUnreachable,
)
from deployer.fc import spec
from deployer.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

_CONFLICT_CODES = {"FunctionNotEmpty", "PreconditionFailed"}
# "请您不要同时更新同一个服务": another update of the same function is under way. It passes by itself, so it
# is retried with backoff (devsapp/fc3 retries its deploys too) instead of failing the deploy at once.
_BUSY_CODES = {"ConcurrentUpdateError"}
_DENIED_CODES = {"AccessDenied", "SignatureNotMatch", "InvalidAccessKeyID", "Forbidden"}


def map_sdk_error(exc: BaseException, operation: str) -> FCError:
    """Turn an SDK exception into our hierarchy, keeping FC's code, status and request id only."""
    if isinstance(exc, FCError):
        return exc
    if isinstance(exc, ThrottlingException):
        # darabonba sleeps x-acs-retry-after as milliseconds (darabonba/core.py get_backoff_time).
        retry_after = exc.retry_after / 1000.0 if exc.retry_after else None
        return FCThrottled(
            _message(exc),
            code=exc.code,
            status_code=_status(exc),
            request_id=_rid(exc),
            operation=operation,
            retry_after=retry_after,
        )
    if isinstance(exc, ClientException | ServerException):
        status, code = _status(exc), str(exc.code or "")
        kw: dict[str, Any] = dict(
            code=code or None, status_code=status, request_id=_rid(exc), operation=operation
        )
        msg = _message(exc)
        if isinstance(exc, ServerException) or (status and status >= 500):
            return FCServerError(msg, **kw)
        if status == 429 or code.startswith("Throttling"):
            return FCThrottled(msg, **kw)
        if code.endswith("AlreadyExists"):
            return FCAlreadyExists(msg, **kw)
        if code.endswith("NotFound") or status == 404:
            return FCNotFound(msg, **kw)
        if code in _BUSY_CODES:
            return FCConcurrentUpdate(msg, **kw)
        if code in _CONFLICT_CODES or status in (409, 412):
            return FCConflict(msg, **kw)
        if code in _DENIED_CODES or status in (401, 403):
            return FCAccessDenied(msg, **kw)
        return FCInvalidArgument(msg, **kw)
    if isinstance(exc, UnretryableException | DaraException | OSError):
        cause = getattr(exc, "inner_exception", None) or exc
        return FCUnreachable(f"{type(cause).__name__}: {_short(str(cause))}", operation=operation)
    raise exc


def _status(exc: Any) -> int | None:
    status = getattr(exc, "status_code", None) or getattr(exc, "statusCode", None)
    try:
        return int(status) if status is not None else None
    except (TypeError, ValueError):
        return None


def _rid(exc: Any) -> str | None:
    rid = getattr(exc, "request_id", None)
    return None if rid in (None, "None", "") else str(rid)


def _message(exc: Any) -> str:
    """FC's own Message (the SDK's `message` prefixes code and request id; `str()` dumps the body)."""
    data = getattr(exc, "data", None) or {}
    msg = data.get("Message") or data.get("message") if isinstance(data, dict) else None
    return _short(str(msg or getattr(exc, "message", "") or exc.__class__.__name__))


def _short(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


Readiness = Literal["ready", "pending", "inactive", "failed"]


def function_readiness(function_body: dict[str, Any]) -> tuple[Readiness, str]:
    """Where a function stands, from GetFunction's body: ready to serve, still changing, inactive, or failed.

    Ready means `state == "Active"` (or no state reported at all) and no update in progress. FC's fourth
    state, `Inactive`, "cannot be invoked" and returns to Pending only when the function is redeployed or
    invoked (states-of-custom-container-functions), so it is reported apart for the caller to act on. Any
    state FC may add later is not ready either.
    """
    state = function_body.get("state")
    update = function_body.get("lastUpdateStatus")
    if state == "Failed":
        return "failed", str(
            function_body.get("stateReason") or function_body.get("stateReasonCode") or "Failed"
        )
    if update == "Failed":
        reason = function_body.get("lastUpdateStatusReason") or function_body.get(
            "lastUpdateStatusReasonCode"
        )
        return "failed", str(reason or "update failed")
    if state == "Pending" or update == "InProgress":
        reason = function_body.get("lastUpdateStatusReasonCode") or function_body.get("stateReasonCode") or ""
        return "pending", str(reason)
    if state == "Inactive":
        return "inactive", str(function_body.get("stateReason") or function_body.get("stateReasonCode") or "")
    if state not in (None, "Active"):
        return "pending", f"unknown state {state}"
    return "ready", str(state or "")


class FCGateway:
    """Create-or-update functions and HTTP triggers on FC 3.0, with retries for transient failures."""

    def __init__(
        self,
        client: Client,
        *,
        max_attempts: int = 8,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 8.0,
        rate_limiter: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.rate_limiter = rate_limiter
        self._sleep = sleep
        self._local = threading.local()

    # Writes whose attempt timed out and was retried: FC may still apply the first attempt later.
    _WRITES = frozenset(
        {"CreateFunction", "UpdateFunction", "CreateTrigger", "UpdateTrigger", "CreateAlias", "UpdateAlias"}
    )

    def take_uncertain(self) -> list[str]:
        """The write operations of this thread whose response never came (since the last call), then reset:
        each may still land at FC after its retry, so the caller checks FC again later."""
        ops = list(getattr(self._local, "uncertain", []))
        self._local.uncertain = []
        return ops

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        rate_limiter: Callable[[], None] | None = None,
        region: str | None = None,
    ) -> FCGateway:
        """The gateway to one region (default settings.region). With no rate_limiter given,
        settings.fc_rate_limit_per_s > 0 builds the shared one for that region (FC counts per region)."""
        if rate_limiter is None:
            from deployer.fc import ratelimit

            rate_limiter = ratelimit.from_settings(settings, region=region)
        return cls(
            make_client(settings, region),
            max_attempts=settings.fc_max_attempts,
            backoff_max_s=settings.fc_backoff_max_s,
            rate_limiter=rate_limiter,
        )

    # -- the retry loop ------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (state.attempt_number - 1))
        delay = random.uniform(ceiling / 2, ceiling)  # exponential backoff with jitter
        if isinstance(exc, FCThrottled) and exc.retry_after:
            delay = max(delay, min(exc.retry_after, self.backoff_max_s))
        return delay

    def _call(self, operation: str, fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            if self.rate_limiter is not None:
                self.rate_limiter()
            try:
                return fn(*args).to_map()
            except Exception as exc:  # noqa: BLE001 - every SDK failure is mapped to our hierarchy
                err = map_sdk_error(exc, operation)
                if isinstance(err, FCUnreachable) and operation in self._WRITES:
                    self._local.__dict__.setdefault("uncertain", []).append(operation)
                if err.retryable:
                    log.info("fc.retryable_error", extra={"operation": operation, "code": err.code})
                raise err from None

        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, FCError) and e.retryable),
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(attempt)

    # -- functions -----------------------------------------------------------------------------

    def create_function(self, body: fc.CreateFunctionInput) -> dict[str, Any]:
        return self._call("CreateFunction", self.client.create_function, fc.CreateFunctionRequest(body=body))

    def update_function(self, name: str, body: fc.UpdateFunctionInput) -> dict[str, Any]:
        return self._call(
            "UpdateFunction", self.client.update_function, name, fc.UpdateFunctionRequest(body=body)
        )

    def get_layer_version_by_arn(self, arn: str) -> dict[str, Any]:
        return self._call("GetLayerVersionByArn", self.client.get_layer_version_by_arn, arn)

    def get_function(self, name: str) -> dict[str, Any]:
        return self._call("GetFunction", self.client.get_function, name, fc.GetFunctionRequest())

    def create_or_update_function(
        self, create: fc.CreateFunctionInput, update: fc.UpdateFunctionInput
    ) -> tuple[dict[str, Any], Literal["created", "updated"]]:
        """Create first (one call on the happy path); AlreadyExists means update in place."""
        try:
            return self.create_function(create), "created"
        except FCAlreadyExists:
            return self.update_function(create.function_name, update), "updated"

    def update_or_create_function(
        self, create: fc.CreateFunctionInput, update: fc.UpdateFunctionInput
    ) -> tuple[dict[str, Any], Literal["created", "updated"]]:
        """Update first, for redeploys (the function normally exists); NotFound means create."""
        try:
            return self.update_function(create.function_name, update), "updated"
        except FCNotFound:
            return self.create_or_update_function(create, update)

    def delete_function(self, name: str, *, missing_ok: bool = True) -> bool:
        try:
            self._call("DeleteFunction", self.client.delete_function, name)
            return True
        except FCNotFound:
            if not missing_ok:
                raise
            return False

    def list_functions(self, prefix: str | None = None, page_size: int = 100) -> list[dict[str, Any]]:
        functions: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            req = fc.ListFunctionsRequest(prefix=prefix, limit=page_size, next_token=token)
            body = self._call("ListFunctions", self.client.list_functions, req).get("body") or {}
            functions += body.get("functions") or []
            token = body.get("nextToken")
            if not token:
                return functions

    # -- triggers ------------------------------------------------------------------------------

    def get_trigger(self, function_name: str, trigger_name: str) -> dict[str, Any]:
        return self._call("GetTrigger", self.client.get_trigger, function_name, trigger_name)

    def create_trigger(self, function_name: str, body: fc.CreateTriggerInput) -> dict[str, Any]:
        return self._call(
            "CreateTrigger", self.client.create_trigger, function_name, fc.CreateTriggerRequest(body=body)
        )

    def update_trigger(
        self, function_name: str, trigger_name: str, body: fc.UpdateTriggerInput
    ) -> dict[str, Any]:
        return self._call(
            "UpdateTrigger",
            self.client.update_trigger,
            function_name,
            trigger_name,
            fc.UpdateTriggerRequest(body=body),
        )

    def create_or_update_trigger(
        self, function_name: str, create: fc.CreateTriggerInput, update: fc.UpdateTriggerInput
    ) -> tuple[dict[str, Any], Literal["created", "updated", "unchanged"]]:
        """Create the trigger; if it exists, update it only when its config differs (the URL stays)."""
        try:
            return self.create_trigger(function_name, create), "created"
        except FCAlreadyExists:
            current = self.get_trigger(function_name, create.trigger_name)
            body = spec.answer_body(current)
            if (
                spec.trigger_config_matches(body.get("triggerConfig"), update)
                and body.get("qualifier") == update.qualifier
            ):
                return current, "unchanged"
            return self.update_trigger(function_name, create.trigger_name, update), "updated"

    def delete_trigger(self, function_name: str, trigger_name: str, *, missing_ok: bool = True) -> bool:
        try:
            self._call("DeleteTrigger", self.client.delete_trigger, function_name, trigger_name)
            return True
        except FCNotFound:
            if not missing_ok:
                raise
            return False

    def list_triggers(self, function_name: str) -> list[dict[str, Any]]:
        triggers: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            req = fc.ListTriggersRequest(limit=100, next_token=token)
            body = self._call("ListTriggers", self.client.list_triggers, function_name, req).get("body") or {}
            triggers += body.get("triggers") or []
            token = body.get("nextToken")
            if not token:
                return triggers

    # -- versions and aliases ------------------------------------------------------------------

    def publish_version(self, function_name: str, description: str) -> dict[str, Any]:
        """One PublishFunctionVersion, NOT retried: a retry after a lost response would publish a second
        version. Callers use publish_version_once, which finds its own version by `description` first."""
        request = fc.PublishFunctionVersionRequest(body=fc.PublishVersionInput(description=description))
        if self.rate_limiter is not None:
            self.rate_limiter()
        try:
            return self.client.publish_function_version(function_name, request).to_map()
        except Exception as exc:  # noqa: BLE001 - mapped to our hierarchy
            raise map_sdk_error(exc, "PublishFunctionVersion") from None

    def list_versions(self, function_name: str, page_size: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        versions: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            req = fc.ListFunctionVersionsRequest(direction="BACKWARD", limit=page_size, next_token=token)
            body = (
                self._call(
                    "ListFunctionVersions", self.client.list_function_versions, function_name, req
                ).get("body")
                or {}
            )
            versions += body.get("versions") or []
            token = body.get("nextToken")
            if not token:
                return versions

    def find_version(self, function_name: str, description: str) -> dict[str, Any] | None:
        """The newest version whose description is exactly `description` (a release's marker)."""
        return next(
            (v for v in self.list_versions(function_name) if v.get("description") == description), None
        )

    def publish_version_once(
        self, function_name: str, description: str, *, look_first: bool = True
    ) -> tuple[dict[str, Any], Literal["published", "found"]]:
        """Exactly one version per marker: look for it, publish if absent; when the publish fails in a way
        that may have reached FC (no answer, a 5xx), look again before publishing anew, with the same
        bounded backoff as every other call. `look_first=False` skips the first look (one call fewer) when
        the caller knows no earlier attempt of this release can have reached FC."""
        attempts = 0
        while True:
            found = self.find_version(function_name, description) if look_first or attempts else None
            if found is not None:
                return {"headers": {}, "statusCode": 200, "body": found}, "found"
            attempts += 1
            try:
                return self.publish_version(function_name, description), "published"
            except FCError as exc:
                if not exc.retryable or attempts >= self.max_attempts:
                    raise
                self._sleep(min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempts - 1)))

    def delete_version(self, function_name: str, version_id: str, *, missing_ok: bool = True) -> bool:
        try:
            self._call(
                "DeleteFunctionVersion", self.client.delete_function_version, function_name, version_id
            )
            return True
        except FCNotFound:
            if not missing_ok:
                raise
            return False

    def get_alias(self, function_name: str, alias_name: str) -> dict[str, Any]:
        return self._call("GetAlias", self.client.get_alias, function_name, alias_name)

    def list_aliases(self, function_name: str) -> list[dict[str, Any]]:
        aliases: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            req = fc.ListAliasesRequest(limit=100, next_token=token)
            body = self._call("ListAliases", self.client.list_aliases, function_name, req).get("body") or {}
            aliases += body.get("aliases") or []
            token = body.get("nextToken")
            if not token:
                return aliases

    def point_alias(
        self,
        function_name: str,
        alias_name: str,
        version_id: str,
        description: str = "",
        *,
        exists: bool | None = None,
    ) -> tuple[dict[str, Any], Literal["created", "updated", "unchanged"]]:
        """Create-or-update `alias_name` to `version_id`. Retrying either call after a lost answer is safe:
        CreateAlias then says AliasAlreadyExists (→ update) and UpdateAlias sets the same version again.
        `exists` (when the caller knows) saves the GetAlias: True updates first, False creates first."""
        update = fc.UpdateAliasInput(version_id=version_id, description=description or None)
        if exists:
            try:
                return self._call(
                    "UpdateAlias",
                    self.client.update_alias,
                    function_name,
                    alias_name,
                    fc.UpdateAliasRequest(body=update),
                ), "updated"
            except FCNotFound:
                exists = False
        try:
            if exists is False:
                raise FCNotFound("the caller says the alias is new", operation="GetAlias")
            current = self.get_alias(function_name, alias_name)
        except FCNotFound:
            body = fc.CreateAliasInput(alias_name=alias_name, version_id=version_id, description=description)
            try:
                return self._call(
                    "CreateAlias", self.client.create_alias, function_name, fc.CreateAliasRequest(body=body)
                ), "created"
            except FCAlreadyExists:
                current = self.get_alias(function_name, alias_name)
        if spec.answer_body(current).get("versionId") == version_id:
            return current, "unchanged"
        return self._call(
            "UpdateAlias",
            self.client.update_alias,
            function_name,
            alias_name,
            fc.UpdateAliasRequest(body=update),
        ), "updated"

    def delete_alias(self, function_name: str, alias_name: str, *, missing_ok: bool = True) -> bool:
        try:
            self._call("DeleteAlias", self.client.delete_alias, function_name, alias_name)
            return True
        except FCNotFound:
            if not missing_ok:
                raise
            return False

    def delete_function_and_triggers(self, function_name: str) -> bool:
        """Triggers, aliases, versions, then the function (devsapp/fc3's order; FC refuses with
        FunctionNotEmpty otherwise)."""
        try:
            triggers = self.list_triggers(function_name)
        except FCNotFound:
            return False
        for trigger in triggers:
            self.delete_trigger(function_name, trigger["triggerName"])
        try:
            for alias in self.list_aliases(function_name):
                self.delete_alias(function_name, alias["aliasName"])
            for version in self.list_versions(function_name):
                self.delete_version(function_name, version["versionId"])
        except FCNotFound:
            return False
        return self.delete_function(function_name)


def credential_client() -> Any:
    """The Alibaba credential chain: env vars, then profiles, OIDC and RAM roles.

    alibabacloud-credentials reads ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET/SECURITY_TOKEN once, when it is
    first imported; read them at call time instead so a process that sets them later (tests, `mcp-fc dev`)
    still uses them. Everything else is the SDK's own default chain.
    """
    from alibabacloud_credentials import models as cred_models
    from alibabacloud_credentials.client import Client as CredentialClient

    ak, sk = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID"), os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if ak and sk:
        token = os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN")
        kind = "sts" if token else "access_key"
        return CredentialClient(
            cred_models.Config(type=kind, access_key_id=ak, access_key_secret=sk, security_token=token)
        )
    return CredentialClient()


def make_client(settings: Settings, region: str | None = None) -> Client:
    """One SDK client for one region (default: settings.region). Credentials come from the Alibaba
    credential chain, never from code.

    The endpoint is FC's regional one (`<account>.<region>.fc.aliyuncs.com`); an explicit MCPFC_FC_ENDPOINT
    may name the region as `{region}` (one endpoint per region), else it serves every region (the emulator,
    a proxy). Every request also says its region in `x-acs-region-id` (signed like the other x-acs-*
    headers), so such an endpoint knows which region a call is for.
    """
    region = region or settings.region
    endpoint, protocol = settings.fc_endpoint, settings.fc_protocol
    if endpoint:
        endpoint = endpoint.replace("{region}", region)
    if endpoint and "://" in endpoint:
        # The SDK would send "http://host:port" as the Host header (fc3-api.md §7.2): keep host:port and
        # take the protocol from the scheme.
        scheme, endpoint = endpoint.split("://", 1)
        protocol = "http" if scheme == "http" else "https"
        endpoint = endpoint.rstrip("/")
    elif not endpoint and settings.fc_account_id:
        endpoint = f"{settings.fc_account_id}.{region}.fc.aliyuncs.com"
    config = open_api.Config(
        credential=credential_client(),
        region_id=region,
        global_parameters=open_api.GlobalParameters(headers={"x-acs-region-id": region}),
        endpoint=endpoint,
        protocol=protocol,
        connect_timeout=int(settings.fc_connect_timeout_s * 1000),
        read_timeout=int(settings.fc_read_timeout_s * 1000),
    )
    return Client(config)
