"""Safe releases under faults (issue 14 #5): lost PublishFunctionVersion / CreateAlias / UpdateAlias
responses and a worker SIGKILLed mid-release, on the real stack (Redis, PostgreSQL, celery worker
processes, the FC emulator's fault injection). The end state: exactly one version per release, `live` on
the newest one, and lost = duplicated = stuck = 0."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.reliability.conftest import (
    emulator_stats,
    kill_worker,
    process_tree,
    recovery_events,
    statuses,
    submit_many,
    tally,
    wait_until,
    wait_workers_ready,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOST_RELEASE_RESPONSES = {
    "*": {"latency_ms": 150},
    "PublishFunctionVersion": {"latency_ms": 150, "lose_response_rate": 0.5, "seed": 14},
    "CreateAlias": {"latency_ms": 150, "lose_response_rate": 0.5, "seed": 15},
    "UpdateAlias": {"latency_ms": 150, "lose_response_rate": 0.5, "seed": 16},
}


def test_lost_publish_and_alias_responses_and_a_sigkill_mid_release(reliable_stack):
    stack = reliable_stack(workers=2, concurrency=2)
    stack.fc.faults.configure(LOST_RELEASE_RESPONSES)
    names = [f"rb-rel-{i:02d}" for i in range(16)]
    accepted, refused = submit_many(stack, names)
    first = tally(stack, "releases: first deploy", names, accepted, refused, prefix="rb-rel-", timeout=180)
    first.check()
    assert first.succeeded == len(names), first.failed

    # Release 2 of every deployment, and a worker SIGKILLed while it holds one mid-release.
    ids = list(accepted.values())
    with stack.http() as http:
        answers = Counter(
            http.post(f"/v1/deployments/{i}/redeploy", json={"env": {"RELEASE": "2"}}).status_code
            for i in ids
        )
    assert answers == {202: len(ids)}, answers
    victim = stack.workers[0]

    def victim_mid_release() -> list[str]:
        pids = {str(p) for p in process_tree(victim.pid)}
        return [
            r.id
            for r in statuses(stack, ids).values()
            if r.lease_owner
            and r.lease_owner.rsplit(":", 1)[-1].split("@")[0] in pids
            and (r.checkpoint or {}).get("release") == 2
        ]

    wait_until(victim_mid_release, 60, what="the victim worker in a release", interval=0.02)
    killed = kill_worker(stack, victim)
    stack.start_worker("restarted", concurrency=2)
    wait_workers_ready(stack)
    second = tally(
        stack, "releases: redeploy + SIGKILL", names, accepted, Counter(), prefix="rb-rel-", timeout=180
    )
    stats = emulator_stats(stack)
    second.extra.update(
        killed_processes=killed,
        recovery_requeues=recovery_events(stack, ids),
        lost_responses={
            op: stats["faults"].get(op, {}) for op in ("PublishFunctionVersion", "CreateAlias", "UpdateAlias")
        },
    )
    second.check()
    assert second.succeeded == len(names), second.failed

    fc = stack.fc.backend
    for name, dep_id in accepted.items():
        versions = fc.list_function_versions(name)["versions"]
        marks = sorted(v["description"] for v in versions)
        assert marks == [f"mcp-fc {dep_id} release 1", f"mcp-fc {dep_id} release 2"], (name, marks)
        newest = next(v["versionId"] for v in versions if v["description"].endswith("release 2"))
        assert fc.get_alias(name, "live")["versionId"] == newest, name
        assert [t["qualifier"] for t in fc.list_triggers(name)["triggers"]] == ["live"], name
    fired = sum(sum(per.values()) for per in second.extra["lost_responses"].values())
    assert fired >= 4, stats["faults"]  # lost responses really happened in the second wave
