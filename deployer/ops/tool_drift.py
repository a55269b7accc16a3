"""Tool drift: how the tools a server lists now differ from the ones recorded at deploy (pure functions).

Two findings live in the row's `result`, each tagged with the task id of the release it is about (like
`result.health`): `tool_drift`, what the scheduled health check found against the deploy's own probe,
and `tool_changes`, how a release's tools differ from the previous release's (written by the deploy).

A server's tools are compared as {tool name: (description, input schema)}: a tool added, removed, or with
another description or input schema is drift. The schema diff names each JSON pointer that changed (a
property added or removed, a type changed, `required` grown), so `mcp-fc status` can say what a client
now has to send differently, not only that something changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from schemas import ToolDrift

ToolDefs = Mapping[str, tuple[str | None, Any]]

#: Longest value shown in one schema change (a whole nested schema replaced is cut, with its size).
MAX_VALUE_CHARS = 200


def defs_from_tools(tools: Iterable[Any]) -> dict[str, tuple[str | None, Any]]:
    """{name: (description, input schema)} from MCP `tools/list` entries (dicts or the SDK's Tool models)."""
    out: dict[str, tuple[str | None, Any]] = {}
    for tool in tools:
        if hasattr(tool, "model_dump"):
            tool = tool.model_dump(mode="json", by_alias=True)
        name = str(tool.get("name"))
        out[name] = (tool.get("description"), tool.get("inputSchema", tool.get("input_schema")))
    return out


def fingerprint(defs: ToolDefs) -> str:
    """One hash of every tool's name, description and input schema (key order does not matter)."""
    canonical = json.dumps(
        {name: [d, s] for name, (d, s) in sorted(defs.items())}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _pointer_part(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def schema_changes(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """Each JSON pointer where two schemas differ: {"path", "old", "new"} ("old"/"new" absent when the
    member was added/removed). Objects are compared member by member; `required` (a set of names) item by
    item; any other list or value as a whole."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[dict[str, Any]] = []
        for key in sorted(set(old) | set(new)):
            where = f"{path}/{_pointer_part(str(key))}"
            if key not in new:
                changes.append({"path": where, "old": old[key]})
            elif key not in old:
                changes.append({"path": where, "new": new[key]})
            elif key == "required" and isinstance(old[key], list) and isinstance(new[key], list):
                for name in sorted(set(new[key]) - set(old[key])):
                    changes.append({"path": f"{where}/{name}", "new": "required"})
                for name in sorted(set(old[key]) - set(new[key])):
                    changes.append({"path": f"{where}/{name}", "old": "required"})
            else:
                changes += schema_changes(old[key], new[key], where)
        return changes
    return [{"path": path or "/", "old": old, "new": new}]


def tool_diff(old: ToolDefs, new: ToolDefs) -> dict[str, Any]:
    """{"added": [names], "removed": [names], "changed": {name: {"description": {"old", "new"}?,
    "input_schema": [changes]?}}}; every part empty when nothing drifted."""
    changed: dict[str, Any] = {}
    for name in sorted(set(old) & set(new)):
        (old_desc, old_schema), (new_desc, new_schema) = old[name], new[name]
        change: dict[str, Any] = {}
        if (old_desc or "") != (new_desc or ""):
            change["description"] = {"old": old_desc, "new": new_desc}
        schema = schema_changes(old_schema or {}, new_schema or {})
        if schema:
            change["input_schema"] = schema
        if change:
            changed[name] = change
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": changed,
    }


def drifted(diff: Mapping[str, Any] | None) -> bool:
    return bool(diff and (diff.get("added") or diff.get("removed") or diff.get("changed")))


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= MAX_VALUE_CHARS else f"{text[: MAX_VALUE_CHARS - 1]}… ({len(text)} chars)"


def diff_lines(diff: Mapping[str, Any]) -> list[str]:
    """The diff for people: `+ tool`, `- tool`, `~ tool: ...` lines, in name order."""
    lines = [f"+ {name} (new tool)" for name in diff.get("added") or []]
    lines += [f"- {name} (tool removed)" for name in diff.get("removed") or []]
    for name, change in sorted((diff.get("changed") or {}).items()):
        if not change.get("description") and not change.get("input_schema"):
            lines.append(f"~ {name}: changed (its description or input schema; no definitions recorded)")
        if change.get("description"):
            desc = change["description"]
            lines.append(f"~ {name}: description {_show(desc.get('old'))} -> {_show(desc.get('new'))}")
        for item in change.get("input_schema") or []:
            where = item["path"]
            if "old" not in item:
                lines.append(f"~ {name}: input schema {where} added: {_show(item['new'])}")
            elif "new" not in item:
                lines.append(f"~ {name}: input schema {where} removed (was {_show(item['old'])})")
            else:
                lines.append(f"~ {name}: input schema {where}: {_show(item['old'])} -> {_show(item['new'])}")
    return lines


def summary(diff: Mapping[str, Any]) -> str:
    """One line for an event: `tools drifted: added x; removed y; changed z (input schema)`."""
    parts = []
    if diff.get("added"):
        parts.append("added " + ", ".join(diff["added"]))
    if diff.get("removed"):
        parts.append("removed " + ", ".join(diff["removed"]))
    for name, change in sorted((diff.get("changed") or {}).items()):
        what = " and ".join(k.replace("_", " ") for k in ("description", "input_schema") if change.get(k))
        parts.append(f"changed {name} ({what})" if what else f"changed {name}")
    return "; ".join(parts)


# -- against a recorded probe -------------------------------------------------------------------------


def compare(baseline: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The tool diff between two probe summaries (deployer/ops/probe.py `ProbeResult.summary()`: per-tool
    fingerprints, and each tool's definition when recorded); None when either side recorded no
    fingerprints (nothing to compare against). Which tools changed comes from the fingerprints; what
    changed in them from the definitions, when both sides have them."""
    if not baseline or not current:
        return None
    old_fp, new_fp = baseline.get("tool_fingerprints"), current.get("tool_fingerprints")
    if not isinstance(old_fp, Mapping) or not isinstance(new_fp, Mapping):
        return None
    changed_names = sorted(n for n in set(old_fp) & set(new_fp) if old_fp[n] != new_fp[n])
    old_defs = _defs(baseline.get("tool_defs"))
    new_defs = _defs(current.get("tool_defs"))
    detail = tool_diff(
        {n: old_defs[n] for n in changed_names if n in old_defs},
        {n: new_defs[n] for n in changed_names if n in new_defs},
    )["changed"]
    return {
        "added": sorted(set(new_fp) - set(old_fp)),
        "removed": sorted(set(old_fp) - set(new_fp)),
        "changed": {name: detail.get(name, {}) for name in changed_names},
    }


def _defs(raw: Any) -> dict[str, tuple[str | None, Any]]:
    """{name: (description, input schema)} from a summary's `tool_defs` ({name: {description, inputSchema}})."""
    if not isinstance(raw, Mapping):
        return {}
    return {
        str(name): (d.get("description"), d.get("inputSchema"))
        for name, d in raw.items()
        if isinstance(d, Mapping)
    }


# -- on the deployment (result.tool_drift: the health check's; result.tool_changes: the deploy's) ------

DRIFT_KEY = "tool_drift"
CHANGES_KEY = "tool_changes"


def public(stored: Mapping[str, Any] | None) -> ToolDrift | None:
    """The API's view of a finding of the live release (deployer/store/result.py `finding`): None when
    there is none or nothing drifted."""
    if stored is None or not drifted(stored):
        return None
    return ToolDrift.model_validate({k: v for k, v in stored.items() if k != "task_id"})


def record(diff: Mapping[str, Any], *, against: str, task_id: str | None, now: datetime) -> dict[str, Any]:
    return {"task_id": task_id, "against": against, "detected_at": now.isoformat(), **diff}


def _parts(value: Mapping[str, Any] | None) -> tuple[Any, Any, Any]:
    value = value or {}
    return (value.get("added") or [], value.get("removed") or [], value.get("changed") or {})


def next_drift(
    prev: Mapping[str, Any] | None, diff: Mapping[str, Any] | None, *, task_id: str | None, now: datetime
) -> tuple[dict[str, Any] | None, str | None]:
    """(the drift to store, the event when it changed) after a check whose tools compare as `diff` with
    the deploy's (None: nothing to compare, the stored drift stays)."""
    if diff is None:
        return (dict(prev) if prev else None), None
    if not drifted(diff):
        return None, ("tools: the server lists the deployed tools again" if prev and drifted(prev) else None)
    if prev and _parts(prev) == _parts(diff):
        return dict(prev), None  # the same drift as last time: no new event, first seen stays
    new = record(diff, against="the deploy", task_id=task_id, now=now)
    return new, f"tool drift against the deploy: {summary(diff)}"


def release_changes(
    previous: Mapping[str, Any] | None,
    current: Mapping[str, Any] | None,
    *,
    against: str,
    task_id: str | None,
    now: datetime,
) -> tuple[dict[str, Any] | None, str | None]:
    """(result.tool_changes, its event) for a release whose probe saw `current`, against the previous
    release's probe summary; (None, None) on a first release or when the tools are the same."""
    diff = compare(previous, current)
    if not drifted(diff):
        return None, None
    assert diff is not None
    return record(
        diff, against=against, task_id=task_id, now=now
    ), f"tool drift against {against}: {summary(diff)}"
