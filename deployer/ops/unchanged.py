"""Nothing changed means no release (issue 26 #1-#2): the one home of that rule, pure functions.

A release (a published version that `live` moves to) is what a user asks for by changing the spec or by
`mcp-fc redeploy` / `rollback`. Every other operation keeps `live` where it is:

- a deploy of a deployment's own spec again (`mcp-fc deploy` rerun, an unchanged `--from-mcp-json`):
  `deploy_changes_nothing` says so; the API then queues nothing and answers the deployment as it is
  (`redeploy` releases the same spec again on purpose, e.g. after an image tag moved);
- a reconcile (`reconcile_plan`): only what FC shows drifted is written again, and never a new version;
  no drift, no write;
- a token rotation (tasks/deploy.py `rotate_steps`): the trigger alone gets the new key (FC's
  UpdateTrigger takes `triggerConfig` on its own), never a version.

Code packages (issue 23) decide "unchanged" with their build too: pass `same_build=False` when the resolved
package or its lock differs from the live release's, and the deploy releases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemas import Status

#: What a reconcile may write again, by the drift field's head (deployer/ops/drift.py names them).
FUNCTION, TRIGGER, ALIAS = "function", "trigger", "alias"


def deploy_changes_nothing(status: str, changed: Iterable[str], *, same_build: bool = True) -> bool:
    """A deploy onto a succeeded deployment with the very spec it has (`changed`: the fields that differ,
    deployer/ops/spec_diff.py, secret values included): nothing to release. A failed or cancelled one is
    deployed again (the user retries it)."""
    return status == Status.succeeded.value and not list(changed) and same_build


def reconcile_plan(fields: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """What a reconcile writes, from the drift fields FC shows: `function` (LATEST's config), `trigger`,
    `alias` (`live` back to the version the deployment records). Empty: nothing to reconcile."""
    plan = set()
    for item in fields:
        head = str(item.get("field") or "").split(".", 1)[0]
        plan.add(head if head in (TRIGGER, ALIAS) else FUNCTION)
    return frozenset(plan)


def no_release_note(name: str, live: str | None) -> str:
    """What a deploy that changes nothing tells its user."""
    serving = f"live still serves version {live}" if live else "FC keeps running it"
    return (
        f"nothing changed: {name} already has this spec, so no new release ({serving}); "
        f"`mcp-fc redeploy {name}` releases it again (e.g. to pull a moved image tag)"
    )
