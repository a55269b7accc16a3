"""Retention (issue 14 #4): a deployment keeps its newest MCPFC_RELEASES_KEEP versions; older ones that no
alias points to are deleted from FC and marked deleted in the history. Real worker, embedded stack."""

from __future__ import annotations

from tests.integration.conftest import stack_factory  # noqa: F401

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:1.0"


def test_only_the_newest_versions_are_kept(stack_factory):  # noqa: F811
    stack = stack_factory(workers=1, pool="threads", probe=False, extra_env={"MCPFC_RELEASES_KEEP": "2"})
    name = "retention"
    with stack.http() as http:
        dep_id = http.post("/v1/deployments", json={"name": name, "image": IMAGE, "command": ["srv"]}).json()[
            "id"
        ]
        assert stack.wait_for(dep_id, {"succeeded", "failed"})["status"] == "succeeded"
        for n in (2, 3, 4):
            http.post(f"/v1/deployments/{dep_id}/redeploy", json={"env": {"N": str(n)}}).raise_for_status()
            assert stack.wait_for(dep_id, {"succeeded", "failed"})["status"] == "succeeded"
        history = http.get(f"/v1/deployments/{dep_id}/versions").json()
    fc = stack.fc.backend
    assert [v["versionId"] for v in fc.list_function_versions(name)["versions"]] == ["4", "3"]
    assert fc.get_alias(name, "live")["versionId"] == "4"
    assert history["live"] == "4"
    assert [(v["version"], v["deleted"], v["live"]) for v in history["versions"]] == [
        ("4", False, True),
        ("3", False, False),
        ("2", True, False),
        ("1", True, False),
    ]
    keys = {v["version"]: v["env_keys"] for v in history["versions"]}
    assert keys["1"] == [] and keys["4"] == ["N"]
