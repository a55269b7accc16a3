"""The FC emulator's two resources, ``Function`` and ``Trigger``: their state and their wire shapes.

A :class:`Function` carries its own state machine (``Pending`` → ``Active``/``Failed``, ``Inactive``, the
``lastUpdateStatus`` of an update), computed lazily from timestamps by :meth:`Function.settle`. A
:class:`Trigger` of type ``http`` owns a loopback port: its URL is the root of its own origin. Both render
FC's wire shape (``to_dict``) and the state file's records (``to_record``/``from_record``). The actions
that create and change them are :class:`~fc_emulator.models.FCBackend`'s.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from .validation import parse_json_object
from .wire import iso


class PublishedVersion(Protocol):
    """What a function needs of a published version to run it (:class:`~fc_emulator.versions.Version`)."""

    version_id: str
    spec: dict[str, Any]
    revision: int


def resolved_image_uri(image: str) -> str:
    """``repo@sha256:<hex>``: the tag is dropped and a digest derived from the image string is appended."""
    if "@sha256:" in image:
        return image
    slash = image.rfind("/")
    colon = image.rfind(":")
    repo = image[:colon] if colon > slash else image
    return f"{repo}@sha256:{hashlib.sha256(image.encode('utf-8')).hexdigest()}"


class Function:
    """One function. ``spec`` holds the input fields (defaults filled); it is replaced, never mutated."""

    #: The registered ENTRYPOINT/CMD of its image (``{"entrypoint": [...], "cmd": [...]}``), set on the
    #: copies :meth:`FCBackend.resolve` hands to the data plane; never persisted.
    image_config: dict[str, Any] | None = None

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        region: str,
        account_id: str,
        now: float,
        pending_seconds: float,
        fail_reason: str | None,
    ) -> None:
        self.name: str = spec["functionName"]
        self.spec = spec
        self.region = region
        self.account_id = account_id
        self.function_id = str(uuid.uuid4())
        self.created = now
        self.modified = now
        #: Incremented on every UpdateFunction (a data plane can restart its instance when it changes).
        self.revision = 1
        self.resolved_image = self._resolve_image()
        self.state, self.state_reason, self.state_reason_code = "Pending", "Function creating", "Creating"
        self.last_update_status: str | None = None
        self.last_update_status_reason: str | None = None
        self.last_update_status_reason_code: str | None = None
        # pending transitions: (at, values...)
        self._state_at: float | None = now + pending_seconds
        self._state_to: tuple[str, str, str] = (
            ("Failed", fail_reason, "ImagePullFailed") if fail_reason else ("Active", "", "")
        )
        self._update_at: float | None = None
        self._update_to: tuple[str, str, str] = ("Successful", "", "")

    @property
    def arn(self) -> str:
        return f"acs:fc:{self.region}:{self.account_id}:functions/{self.name}"

    @property
    def image(self) -> str | None:
        container = self.spec.get("customContainerConfig")
        return container.get("image") if isinstance(container, Mapping) else None

    def _resolve_image(self) -> str | None:
        image = self.image
        return resolved_image_uri(image) if isinstance(image, str) and image else None

    def settle(self, now: float) -> None:
        """Apply the transitions whose time has come, in time order."""
        events = []
        if self._state_at is not None and now >= self._state_at:
            events.append((self._state_at, "state"))
        if self._update_at is not None and now >= self._update_at:
            events.append((self._update_at, "update"))
        for _, kind in sorted(events):
            if kind == "state":
                self.state, self.state_reason, self.state_reason_code = self._state_to
                self._state_at = None
            else:
                status, reason, code = self._update_to
                self.last_update_status = status
                self.last_update_status_reason = reason
                self.last_update_status_reason_code = code
                self._update_at = None
                # A successful update of a function whose start had failed brings it up.
                if status == "Successful" and self.state == "Failed" and self._state_at is None:
                    self.state, self.state_reason, self.state_reason_code = "Active", "", ""

    def deactivate(self) -> None:
        """FC's ``Inactive``: kept, but not invocable until it is updated or invoked."""
        self._state_at = None
        self.state = "Inactive"
        self.state_reason = (
            "The function has not been invoked for a long time and its resources were released"
        )
        self.state_reason_code = "Idle"

    def wake(self, *, now: float, pending_seconds: float, fail_reason: str | None) -> None:
        """Inactive → Pending → Active (or Failed): what an update or an invocation does on FC."""
        if self.state != "Inactive":
            return
        self.state, self.state_reason, self.state_reason_code = "Pending", "Function restoring", "Restoring"
        self._state_at = now + pending_seconds
        self._state_to = ("Failed", fail_reason, "ImagePullFailed") if fail_reason else ("Active", "", "")

    def apply_update(
        self, spec: dict[str, Any], *, now: float, pending_seconds: float, fail_reason: str | None
    ) -> None:
        self.wake(now=now, pending_seconds=pending_seconds, fail_reason=fail_reason)
        self.spec = spec
        self.modified = now
        self.revision += 1
        self.resolved_image = self._resolve_image()
        self.last_update_status = "InProgress"
        self.last_update_status_reason = "Function updating"
        self.last_update_status_reason_code = "Updating"
        self._update_at = now + pending_seconds
        self._update_to = (
            ("Failed", fail_reason, "ImagePullFailed") if fail_reason else ("Successful", "", "")
        )

    #: The runtime's key for this configuration's instance: LATEST's is the name, a version's name@id.
    instance_key: str | None = None
    version_id: str = "LATEST"

    def version_view(self, version: PublishedVersion) -> Function:
        """A copy running a published version's snapshot (its own instance, never stale)."""
        view = copy.copy(self)
        view.spec = version.spec
        view.revision = version.revision
        view.version_id = version.version_id
        view.instance_key = f"{self.name}@{version.version_id}"
        view.resolved_image = view._resolve_image()
        return view

    def to_dict(self) -> dict[str, Any]:
        """The FC ``Function`` wire shape (camelCase)."""
        body = copy.deepcopy({k: v for k, v in self.spec.items() if k != "code"})
        container = body.get("customContainerConfig")
        if isinstance(container, dict) and self.resolved_image:
            container["resolvedImageUri"] = self.resolved_image
        body["layers"] = [{"arn": arn, "size": 0} for arn in self.spec.get("layers") or []]
        body.update(
            {
                "functionId": self.function_id,
                "functionName": self.name,
                "functionArn": self.arn,
                "createdTime": iso(self.created),
                "lastModifiedTime": iso(self.modified),
                "codeSize": int(self.spec.get("codeSize") or 0),
                "codeChecksum": str(self.spec.get("codeChecksum") or ""),
                "state": self.state,
                "stateReason": self.state_reason,
                "stateReasonCode": self.state_reason_code,
                "lastUpdateStatus": self.last_update_status,
                "lastUpdateStatusReason": self.last_update_status_reason,
                "lastUpdateStatusReasonCode": self.last_update_status_reason_code,
                "version": self.version_id,
            }
        )
        return dict(sorted(body.items()))

    # persistence
    def to_record(self) -> dict[str, Any]:
        record = {k: v for k, v in vars(self).items() if k != "account_id"}
        record["_state_to"] = list(self._state_to)
        record["_update_to"] = list(self._update_to)
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, region: str, account_id: str) -> Function:
        fn = cls.__new__(cls)
        for key, value in record.items():
            setattr(fn, key, tuple(value) if key in ("_state_to", "_update_to") else value)
        fn.region, fn.account_id = record.get("region") or region, account_id
        return fn


class Trigger:
    """One trigger. HTTP triggers own a loopback port: their URL is the root of their own origin."""

    def __init__(self, function_name: str, spec: dict[str, Any], *, now: float) -> None:
        self.function_name = function_name
        self.name: str = spec["triggerName"]
        self.spec = spec
        self.trigger_id = str(uuid.uuid4())
        self.created = now
        self.modified = now
        self.port: int | None = None
        self.url_host = "127.0.0.1"

    @property
    def trigger_type(self) -> str:
        return self.spec["triggerType"]

    @property
    def qualifier(self) -> str:
        return self.spec.get("qualifier") or "LATEST"

    @property
    def is_http(self) -> bool:
        return self.trigger_type == "http"

    @property
    def config(self) -> dict[str, Any]:
        return parse_json_object(self.spec["triggerConfig"], "triggerConfig")

    @property
    def url(self) -> str | None:
        return f"http://{self.url_host}:{self.port}" if self.is_http and self.port else None

    def to_dict(self) -> dict[str, Any]:
        """The FC ``Trigger`` wire shape. ``urlIntranet`` equals ``urlInternet`` (both loopback)."""
        body: dict[str, Any] = {
            "triggerName": self.name,
            "triggerType": self.trigger_type,
            "triggerId": self.trigger_id,
            "triggerConfig": self.spec["triggerConfig"],
            "qualifier": self.qualifier,
            "description": self.spec.get("description") or "",
            "invocationRole": self.spec.get("invocationRole"),
            "sourceArn": self.spec.get("sourceArn"),
            "targetArn": None,
            "status": None,
            "createdTime": iso(self.created),
            "lastModifiedTime": iso(self.modified),
        }
        if self.is_http:
            body["httpTrigger"] = {"urlInternet": self.url, "urlIntranet": self.url}
        return body

    def to_record(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Trigger:
        trigger = cls.__new__(cls)
        for key, value in record.items():
            setattr(trigger, key, value)
        return trigger


__all__ = ["Function", "PublishedVersion", "Trigger", "resolved_image_uri"]
