"""Function versions and aliases of the FC emulator (PublishFunctionVersion, ListFunctionVersions,
DeleteFunctionVersion, CreateAlias, GetAlias, UpdateAlias, ListAliases, DeleteAlias).

A version is an immutable snapshot of the function's configuration when it was published; its id is a
decimal string counted per function and never reused. An alias names one version (never ``LATEST``). A
trigger's qualifier is ``LATEST``, a version id or an alias; the data plane runs the configuration the
qualifier resolves to, so a trigger on an alias keeps serving its version while ``LATEST`` changes.

Strictness (docs/decisions.md, "Safe releases"): a version that an alias or a trigger uses cannot be deleted,
an alias that a trigger uses cannot be deleted, and an alias or trigger on a missing version is refused.
``FCVersionsMixin`` is mixed into :class:`~fc_emulator.models.FCBackend` and uses its lock, clock and
persistence.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from .exceptions import AliasAlreadyExists, AliasNotFound, InvalidArgument, VersionNotFound
from .wire import iso, page_by_key

ALIAS_NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_-]{0,127}\Z")
VERSION_DIRECTIONS = ("BACKWARD", "FORWARD")


class Version:
    def __init__(self, version_id: str, spec: dict[str, Any], revision: int, description: str, now: float):
        self.version_id = version_id
        self.spec = copy.deepcopy(spec)
        #: The function's revision when it was published: instances of this version never go stale.
        self.revision = revision
        self.description = description
        self.created = now

    def to_dict(self) -> dict[str, Any]:
        return {
            "versionId": self.version_id,
            "description": self.description,
            "createdTime": iso(self.created),
            "lastModifiedTime": iso(self.created),
        }

    def to_record(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Version:
        version = cls.__new__(cls)
        for key, value in record.items():
            setattr(version, key, value)
        return version


class Alias:
    def __init__(self, spec: dict[str, Any], now: float) -> None:
        self.name: str = spec["aliasName"]
        self.version_id: str = spec["versionId"]
        self.description: str = spec.get("description") or ""
        self.weights: dict[str, float] = dict(spec.get("additionalVersionWeight") or {})
        self.created = now
        self.modified = now

    def to_dict(self) -> dict[str, Any]:
        return {
            "aliasName": self.name,
            "versionId": self.version_id,
            "description": self.description,
            "additionalVersionWeight": dict(self.weights),
            "createdTime": iso(self.created),
            "lastModifiedTime": iso(self.modified),
        }

    def to_record(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Alias:
        alias = cls.__new__(cls)
        for key, value in record.items():
            setattr(alias, key, value)
        return alias


class FCVersionsMixin:
    """Versions and aliases state; needs the backend's ``_lock``, ``clock``, ``_function``, ``_body``,
    ``_changed``, ``_persist``, ``triggers`` and ``listeners``."""

    versions: dict[str, dict[str, Version]]
    aliases: dict[str, dict[str, Alias]]
    version_counter: dict[str, int]

    def _init_versions(self) -> None:
        self.versions = {}
        self.aliases = {}
        self.version_counter = {}

    # helpers -------------------------------------------------------------------------------------------
    def _version(self, function_name: str, version_id: str) -> Version:
        version = self.versions.get(function_name, {}).get(str(version_id))
        if version is None:
            raise VersionNotFound(function_name, str(version_id))
        return version

    def _alias(self, function_name: str, alias_name: str) -> Alias:
        alias = self.aliases.get(function_name, {}).get(alias_name)
        if alias is None:
            raise AliasNotFound(function_name, alias_name)
        return alias

    def resolve_qualifier(self, function_name: str, qualifier: str | None) -> Version | None:
        """``None`` for LATEST, else the version a version id or alias names (raises when missing)."""
        if not qualifier or qualifier == "LATEST":
            return None
        if qualifier.isdigit():
            return self._version(function_name, qualifier)
        alias = self._alias(function_name, qualifier)
        return self._version(function_name, alias.version_id)

    def check_qualifier(self, function_name: str, qualifier: str | None) -> None:
        self.resolve_qualifier(function_name, qualifier)  # type: ignore[attr-defined]

    def _trigger_users(self, function_name: str, qualifier: str) -> list[str]:
        return sorted(
            t.name
            for t in self.triggers.get(function_name, {}).values()  # type: ignore[attr-defined]
            if t.qualifier == qualifier
        )

    def _check_alias_target(self, function_name: str, version_id: Any) -> str:
        if not isinstance(version_id, str) or not version_id:
            raise InvalidArgument("versionId is required")
        if version_id == "LATEST":
            raise InvalidArgument("an alias must point to a published version, not LATEST")
        self._version(function_name, version_id)
        return version_id

    @staticmethod
    def _check_weights(weights: Any) -> None:
        if weights in (None, {}):
            return
        raise InvalidArgument(
            "additionalVersionWeight is not emulated: the emulator routes an alias to one version only"
        )

    # versions ------------------------------------------------------------------------------------------
    def publish_function_version(self, function_name: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        data = self._body(body)  # type: ignore[attr-defined]
        description = data.get("description") or ""
        if not isinstance(description, str) or len(description) > 256:
            raise InvalidArgument("description must be a string of at most 256 characters")
        with self._lock:  # type: ignore[attr-defined]
            fn = self._function(function_name)  # type: ignore[attr-defined]
            number = self.version_counter.get(function_name, 0) + 1
            self.version_counter[function_name] = number
            version = Version(str(number), fn.spec, fn.revision, description, self.clock())  # type: ignore[attr-defined]
            self.versions.setdefault(function_name, {})[version.version_id] = version
            result = version.to_dict()
            seq = self._changed()  # type: ignore[attr-defined]
        self._persist(seq)  # type: ignore[attr-defined]
        return result

    def list_function_versions(
        self,
        function_name: str,
        direction: str | None = None,
        limit: Any = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        direction = direction or "BACKWARD"
        if direction not in VERSION_DIRECTIONS:
            raise InvalidArgument(f"direction must be one of {list(VERSION_DIRECTIONS)}, got {direction!r}")
        with self._lock:  # type: ignore[attr-defined]
            self._function(function_name)  # type: ignore[attr-defined]
            versions = sorted(self.versions.get(function_name, {}).values(), key=lambda v: int(v.version_id))
            if direction == "BACKWARD":
                versions.reverse()
            page, token = page_by_key(versions, lambda v: v.version_id, limit, next_token)
            result: dict[str, Any] = {"versions": [v.to_dict() for v in page], "direction": direction}
        if token:
            result["nextToken"] = token
        return result

    def delete_function_version(self, function_name: str, version_id: str) -> None:
        with self._lock:  # type: ignore[attr-defined]
            self._function(function_name)  # type: ignore[attr-defined]
            self._version(function_name, version_id)
            users = sorted(
                a.name for a in self.aliases.get(function_name, {}).values() if a.version_id == version_id
            )
            if users:
                raise InvalidArgument(
                    f"version '{version_id}' of function '{function_name}' is used by alias(es) {users}"
                )
            triggers = self._trigger_users(function_name, version_id)
            if triggers:
                raise InvalidArgument(
                    f"version '{version_id}' of function '{function_name}' is used by trigger(s) {triggers}"
                )
            del self.versions[function_name][version_id]
            seq = self._changed()  # type: ignore[attr-defined]
        self._persist(seq)  # type: ignore[attr-defined]

    # aliases -------------------------------------------------------------------------------------------
    def create_alias(self, function_name: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        data = self._body(body)  # type: ignore[attr-defined]
        name = data.get("aliasName")
        if not isinstance(name, str) or not ALIAS_NAME_RE.fullmatch(name) or name == "LATEST":
            raise InvalidArgument(
                f"aliasName {name!r} is invalid: 1-128 letters, digits, '_' or '-', not starting with a digit "
                "or '-', and not LATEST"
            )
        self._check_weights(data.get("additionalVersionWeight"))
        with self._lock:  # type: ignore[attr-defined]
            self._function(function_name)  # type: ignore[attr-defined]
            if name in self.aliases.get(function_name, {}):
                raise AliasAlreadyExists(function_name, name)
            data["versionId"] = self._check_alias_target(function_name, data.get("versionId"))
            alias = Alias(data, self.clock())  # type: ignore[attr-defined]
            self.aliases.setdefault(function_name, {})[name] = alias
            result = alias.to_dict()
            seq = self._changed()  # type: ignore[attr-defined]
        self._persist(seq)  # type: ignore[attr-defined]
        return result

    def get_alias(self, function_name: str, alias_name: str) -> dict[str, Any]:
        with self._lock:  # type: ignore[attr-defined]
            self._function(function_name)  # type: ignore[attr-defined]
            return self._alias(function_name, alias_name).to_dict()

    def update_alias(
        self, function_name: str, alias_name: str, body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        data = self._body(body)  # type: ignore[attr-defined]
        self._check_weights(data.get("additionalVersionWeight"))
        with self._lock:  # type: ignore[attr-defined]
            self._function(function_name)  # type: ignore[attr-defined]
            alias = self._alias(function_name, alias_name)
            if "versionId" in data:
                alias.version_id = self._check_alias_target(function_name, data["versionId"])
            if "description" in data:
                alias.description = str(data["description"])
            alias.modified = self.clock()  # type: ignore[attr-defined]
            result = alias.to_dict()
            seq = self._changed()  # type: ignore[attr-defined]
        self._persist(seq)  # type: ignore[attr-defined]
        return result

    def list_aliases(
        self, function_name: str, prefix: str | None = None, limit: Any = None, next_token: str | None = None
    ) -> dict[str, Any]:
        with self._lock:  # type: ignore[attr-defined]
            self._function(function_name)  # type: ignore[attr-defined]
            aliases = sorted(
                (
                    a
                    for a in self.aliases.get(function_name, {}).values()
                    if not prefix or a.name.startswith(prefix)
                ),
                key=lambda a: a.name,
            )
            page, token = page_by_key(aliases, lambda a: a.name, limit, next_token)
            result: dict[str, Any] = {"aliases": [a.to_dict() for a in page]}
        if token:
            result["nextToken"] = token
        return result

    def delete_alias(self, function_name: str, alias_name: str) -> None:
        with self._lock:  # type: ignore[attr-defined]
            self._function(function_name)  # type: ignore[attr-defined]
            self._alias(function_name, alias_name)
            triggers = self._trigger_users(function_name, alias_name)
            if triggers:
                raise InvalidArgument(
                    f"alias '{alias_name}' of function '{function_name}' is used by trigger(s) {triggers}"
                )
            del self.aliases[function_name][alias_name]
            seq = self._changed()  # type: ignore[attr-defined]
        self._persist(seq)  # type: ignore[attr-defined]

    # state ---------------------------------------------------------------------------------------------
    def _versions_records(self) -> dict[str, Any]:
        return {
            "versions": {f: [v.to_record() for v in vs.values()] for f, vs in self.versions.items()},
            "aliases": {f: [a.to_record() for a in al.values()] for f, al in self.aliases.items()},
            "version_counter": dict(self.version_counter),
        }

    def _load_versions(self, data: Mapping[str, Any], functions: Mapping[str, Any]) -> None:
        self._init_versions()
        for f, records in (data.get("versions") or {}).items():
            if f in functions:
                self.versions[f] = {r["version_id"]: Version.from_record(r) for r in records}
        for f, records in (data.get("aliases") or {}).items():
            if f in functions:
                self.aliases[f] = {r["name"]: Alias.from_record(r) for r in records}
        self.version_counter = {
            f: int(n) for f, n in (data.get("version_counter") or {}).items() if f in functions
        }

    def _drop_versions(self, function_name: str) -> None:
        self.versions.pop(function_name, None)
        self.aliases.pop(function_name, None)
        self.version_counter.pop(function_name, None)
