"""The trigger actions of the FC emulator (CreateTrigger, GetTrigger, UpdateTrigger, DeleteTrigger,
ListTriggers).

Strictness: at most ``MAX_TRIGGERS_PER_FUNCTION`` triggers a function and one HTTP trigger per qualifier; a
trigger's qualifier must exist (``LATEST``, a version or an alias). An HTTP trigger gets its loopback
listener when it is created and keeps its port and URL across updates. ``FCTriggersMixin`` is mixed into
:class:`~fc_emulator.models.FCBackend` and uses its lock, clock, lookups, listeners and persistence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .exceptions import FCError, InvalidArgument, TriggerAlreadyExists
from .resources import Trigger
from .validation import (
    MAX_TRIGGERS_PER_FUNCTION,
    TRIGGER_INPUT_KEYS,
    TRIGGER_UPDATABLE_KEYS,
    validate_trigger_spec,
)
from .wire import paginate


class FCTriggersMixin:
    """Trigger actions; needs the backend's ``_lock``, ``clock``, ``_function``, ``_trigger``, ``_body``,
    ``_changed``, ``_persist``, ``check_qualifier``, ``triggers`` and ``listeners``."""

    triggers: dict[str, dict[str, Trigger]]

    def _check_trigger_limits(self, function_name: str, spec: Mapping[str, Any], exclude: str | None) -> None:
        others = [t for n, t in self.triggers.get(function_name, {}).items() if n != exclude]
        if exclude is None and len(others) >= MAX_TRIGGERS_PER_FUNCTION:
            raise InvalidArgument(
                f"function '{function_name}' already has {MAX_TRIGGERS_PER_FUNCTION} triggers, the maximum"
            )
        if spec["triggerType"] == "http":
            qualifier = spec.get("qualifier") or "LATEST"
            for other in others:
                if other.is_http and other.qualifier == qualifier:
                    raise InvalidArgument(
                        f"function '{function_name}' already has an HTTP trigger "
                        f"'{other.name}' for qualifier '{qualifier}'; only one is allowed"
                    )

    def create_trigger(self, function_name: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        data = self._body(body)
        spec = {k: data[k] for k in TRIGGER_INPUT_KEYS if k in data}
        spec.setdefault("qualifier", "LATEST")
        with self._lock:
            self._function(function_name)
            validate_trigger_spec(spec)
            self.check_qualifier(function_name, spec["qualifier"])
            name = spec["triggerName"]
            if name in self.triggers.setdefault(function_name, {}):
                raise TriggerAlreadyExists(function_name, name)
            self._check_trigger_limits(function_name, spec, exclude=None)
            trigger = Trigger(function_name, spec, now=self.clock())
            if trigger.is_http:
                trigger.url_host = self.listeners.url_host
                trigger.port = self.listeners.open(function_name, name)
            self.triggers[function_name][name] = trigger
            result = trigger.to_dict()
            seq = self._changed()
        self._persist(seq)
        return result

    def get_trigger(self, function_name: str, trigger_name: str) -> dict[str, Any]:
        with self._lock:
            return self._trigger(function_name, trigger_name).to_dict()

    def update_trigger(
        self, function_name: str, trigger_name: str, body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """PATCH-like over ``triggerConfig`` (replaced as a whole), ``qualifier``, ``description`` and
        ``invocationRole``; the name and type cannot change. An HTTP trigger keeps its port and URL."""
        data = self._body(body)
        changes = {k: data[k] for k in TRIGGER_UPDATABLE_KEYS if k in data}
        with self._lock:
            trigger = self._trigger(function_name, trigger_name)
            spec = {**trigger.spec, **changes}
            validate_trigger_spec(spec)
            self.check_qualifier(function_name, spec.get("qualifier"))
            self._check_trigger_limits(function_name, spec, exclude=trigger_name)
            trigger.spec = spec
            trigger.modified = self.clock()
            result = trigger.to_dict()
            seq = self._changed()
        self._persist(seq)
        return result

    def delete_trigger(self, function_name: str, trigger_name: str) -> None:
        with self._lock:
            trigger = self._trigger(function_name, trigger_name)
            del self.triggers[function_name][trigger_name]
            orphaned: tuple[str, ...] = ()
            if trigger.is_http:
                self.listeners.close(function_name, trigger_name)
                orphaned = self._unserved_instance_keys(function_name, trigger.qualifier)
            seq = self._changed()
        self._persist(seq)
        if trigger.is_http:
            self.listeners.trigger_deleted(function_name, trigger_name, orphaned=orphaned)

    def _unserved_instance_keys(self, function_name: str, qualifier: str) -> tuple[str, ...]:
        """The instance key a deleted HTTP trigger's qualifier ran, when no other HTTP trigger of the function
        reaches it any more: a version's instance (mcp-fc's `verify` trigger) would otherwise run until its
        idle timeout with nothing able to call it (issue 26 #11)."""

        def key(q: str) -> str | None:
            try:
                version = self.resolve_qualifier(function_name, q)  # type: ignore[attr-defined]
            except FCError:
                return None
            return function_name if version is None else f"{function_name}@{version.version_id}"

        gone = key(qualifier)
        served = {key(t.qualifier) for t in self.triggers.get(function_name, {}).values() if t.is_http}
        return (gone,) if gone is not None and gone != function_name and gone not in served else ()

    def list_triggers(
        self, function_name: str, prefix: str | None = None, limit: Any = None, next_token: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            self._function(function_name)
            triggers = self.triggers.get(function_name, {})
            names, token = paginate(list(triggers), prefix, limit, next_token)
            result: dict[str, Any] = {"triggers": [triggers[n].to_dict() for n in names]}
        if token:
            result["nextToken"] = token
        return result


__all__ = ["FCTriggersMixin"]
