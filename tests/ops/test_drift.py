"""deployer/ops/drift.py: FC's managed fields against the spec, with secret values never shown."""

from __future__ import annotations

import json

from deployer.fc import spec
from deployer.ops import drift
from schemas import DeployRequest

REQ = DeployRequest(
    name="mcp-time",
    image="registry.cn-hangzhou.aliyuncs.com/ns/mcp-time:1",
    command=["mcp-server-time"],
    env={"LOG_LEVEL": "info"},
    secret_env={"API_TOKEN": "s3cr3t-value-42"},
)


def body(**changes):
    base = spec.update_function_input(REQ).to_map()
    base.update(changes)
    return base


def test_no_drift_when_fc_runs_the_spec():
    assert drift.function_fields(REQ, body()) == []


def test_a_changed_size_names_the_field_and_both_values():
    assert drift.function_fields(REQ, body(memorySize=1024)) == [
        {"field": "memorySize", "fc": 1024, "spec": 512}
    ]


def test_env_drift_shows_only_the_differing_keys_and_masks_secrets():
    env = {"LOG_LEVEL": "debug", "API_TOKEN": "another-secret-99"}
    [field] = drift.function_fields(REQ, body(environmentVariables=env))
    assert field["field"] == "environmentVariables"
    assert field["fc"] == {"API_TOKEN": "***", "LOG_LEVEL": "debug"}
    assert field["spec"] == {"API_TOKEN": "***", "LOG_LEVEL": "info"}
    assert "s3cr3t" not in json.dumps(field) and "another-secret" not in json.dumps(field)


def test_a_secret_in_a_changed_command_is_masked():
    container = dict(body()["customContainerConfig"], command=["mcp-proxy", "--token", "s3cr3t-value-42"])
    [field] = drift.function_fields(REQ, body(customContainerConfig=container))
    assert field["field"] == "customContainerConfig.command" and "s3cr3t-value-42" not in json.dumps(field)


def test_trigger_fields_compare_qualifier_and_managed_config():
    auth = spec.EndpointAuth()
    anonymous = DeployRequest.model_validate(
        {**REQ.model_dump(mode="json"), "auth": {"type": "anonymous"}, "secret_env": {}}
    )
    config = spec.trigger_config(anonymous, auth)
    same = {"qualifier": "live", "triggerConfig": json.dumps(config)}
    assert drift.trigger_fields(anonymous, auth, same, qualifier="live") == []
    changed = {"qualifier": "LATEST", "triggerConfig": json.dumps({**config, "methods": ["GET"]})}
    fields = {f["field"]: f for f in drift.trigger_fields(anonymous, auth, changed, qualifier="live")}
    assert fields["trigger.qualifier"] == {"field": "trigger.qualifier", "fc": "LATEST", "spec": "live"}
    assert fields["trigger.triggerConfig.methods"]["fc"] == ["GET"]


def test_alias_and_summary():
    assert drift.alias_fields({"versionId": "3"}, "3") == []
    fields = drift.alias_fields({"versionId": "2"}, "3")
    assert drift.summary(fields) == 'alias.live.versionId: FC has "2", the spec wants "3"'
    assert drift.report([])["drifted"] is False
