"""Function versions, aliases and triggers on a qualifier, through the official SDK; and a data plane that
runs the configuration of the version a trigger's qualifier resolves to (the old version keeps answering
while LATEST changes)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from alibabacloud_fc20230330 import models as fc
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException

from fc_emulator import EmulatorServer
from tests.emulator.test_runtime import AK, SK, echo_input


def _code(exc: pytest.ExceptionInfo[ClientException]) -> tuple[str, int]:
    return str(exc.value.code), int(exc.value.status_code)


def publish(client: Client, name: str, description: str = "") -> str:
    body = fc.PublishVersionInput(description=description)
    return client.publish_function_version(name, fc.PublishFunctionVersionRequest(body=body)).body.version_id


def alias(client: Client, name: str, alias_name: str, version: str) -> fc.Alias:
    body = fc.CreateAliasInput(alias_name=alias_name, version_id=version)
    return client.create_alias(name, fc.CreateAliasRequest(body=body)).body


def test_versions_are_numbered_snapshots_listed_newest_first(client: Client, created: str) -> None:
    v1 = publish(client, created, "mcp-fc d1 release 1")
    update = fc.UpdateFunctionInput(environment_variables={"STAGE": "two"})
    client.update_function(created, fc.UpdateFunctionRequest(body=update))
    v2 = publish(client, created, "mcp-fc d1 release 2")
    assert (v1, v2) == ("1", "2")

    listed = client.list_function_versions(created, fc.ListFunctionVersionsRequest()).body
    assert [v.version_id for v in listed.versions] == ["2", "1"]
    assert listed.versions[1].description == "mcp-fc d1 release 1"
    forward = client.list_function_versions(
        created, fc.ListFunctionVersionsRequest(direction="FORWARD", limit=1)
    )
    assert [v.version_id for v in forward.body.versions] == ["1"] and forward.body.next_token == "2"

    # Immutable: version 1 keeps the configuration it was published with.
    old = client.get_function(created, fc.GetFunctionRequest(qualifier="1")).body
    new = client.get_function(created, fc.GetFunctionRequest(qualifier="2")).body
    assert "STAGE" not in (old.environment_variables or {})
    assert new.environment_variables["STAGE"] == "two"


def test_aliases_create_get_update_list_delete(client: Client, created: str) -> None:
    publish(client, created)
    publish(client, created)
    made = alias(client, created, "live", "1")
    assert (made.alias_name, made.version_id) == ("live", "1")
    with pytest.raises(ClientException) as exc:
        alias(client, created, "live", "2")
    assert _code(exc) == ("AliasAlreadyExists", 409)

    client.update_alias(created, "live", fc.UpdateAliasRequest(body=fc.UpdateAliasInput(version_id="2")))
    assert client.get_alias(created, "live").body.version_id == "2"
    listed = client.list_aliases(created, fc.ListAliasesRequest()).body.aliases
    assert [(a.alias_name, a.version_id) for a in listed] == [("live", "2")]

    client.delete_alias(created, "live")
    with pytest.raises(ClientException) as exc:
        client.get_alias(created, "live")
    assert _code(exc) == ("AliasNotFound", 404)


def test_fc_errors_for_missing_and_used_versions(client: Client, created: str, http_trigger_input) -> None:
    with pytest.raises(ClientException) as exc:
        alias(client, created, "live", "7")
    assert _code(exc) == ("VersionNotFound", 404)
    with pytest.raises(ClientException) as exc:
        alias(client, created, "live", "LATEST")
    assert _code(exc)[1] == 400

    version = publish(client, created)
    alias(client, created, "live", version)
    with pytest.raises(ClientException) as exc:
        client.delete_function_version(created, version)
    assert _code(exc) == ("InvalidArgument", 400) and "alias" in exc.value.message

    # A trigger on a missing qualifier is refused; one on the alias holds the alias.
    missing = http_trigger_input("http")
    missing.qualifier = "nope"
    with pytest.raises(ClientException) as exc:
        client.create_trigger(created, fc.CreateTriggerRequest(body=missing))
    assert _code(exc) == ("AliasNotFound", 404)
    on_live = http_trigger_input("http")
    on_live.qualifier = "live"
    url = client.create_trigger(created, fc.CreateTriggerRequest(body=on_live)).body.http_trigger.url_internet
    with pytest.raises(ClientException) as exc:
        client.delete_alias(created, "live")
    assert _code(exc)[1] == 400

    # The function is not empty while versions or aliases remain (devsapp removes them first).
    client.delete_trigger(created, "http")
    with pytest.raises(ClientException) as exc:
        client.delete_function(created)
    assert _code(exc) == ("FunctionNotEmpty", 412)
    client.delete_alias(created, "live")
    client.delete_function_version(created, version)
    with pytest.raises(ClientException) as exc:
        client.delete_function_version(created, version)
    assert _code(exc) == ("VersionNotFound", 404)
    client.delete_function(created)
    assert url


def test_changing_a_trigger_qualifier_keeps_its_url(client: Client, created: str, http_trigger_input) -> None:
    trigger = client.create_trigger(created, fc.CreateTriggerRequest(body=http_trigger_input("http"))).body
    alias(client, created, "live", publish(client, created))
    updated = client.update_trigger(
        created, "http", fc.UpdateTriggerRequest(body=fc.UpdateTriggerInput(qualifier="live"))
    ).body
    assert updated.qualifier == "live"
    assert updated.http_trigger.url_internet == trigger.http_trigger.url_internet


# data plane -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    emulator = EmulatorServer(port=0, access_key_id=AK, access_key_secret=SK, pending_seconds=0).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def sdk(server: EmulatorServer, make_client) -> Client:
    server.reset()
    return make_client(server, AK, SK)


def _trigger(sdk: Client, name: str, trigger_name: str, qualifier: str) -> str:
    config = {"authType": "anonymous", "methods": ["GET", "POST"]}
    body = fc.CreateTriggerInput(
        trigger_name=trigger_name, trigger_type="http", qualifier=qualifier, trigger_config=json.dumps(config)
    )
    return sdk.create_trigger(name, fc.CreateTriggerRequest(body=body)).body.http_trigger.url_internet


def test_a_trigger_on_an_alias_runs_its_version_while_latest_changes(sdk: Client, wait_until) -> None:
    sdk.create_function(fc.CreateFunctionRequest(body=echo_input(env={"GREETING": "one"})))
    alias(sdk, "echo", "live", publish(sdk, "echo"))
    live = _trigger(sdk, "echo", "http", "live")
    assert httpx.get(f"{live}/env", timeout=30).json()["GREETING"] == "one"
    pid_one = httpx.get(f"{live}/pid", timeout=30).text

    # LATEST gets a new config; a version on it is checked through its own short-lived trigger, and the
    # live URL keeps answering from version 1's instance meanwhile.
    update = fc.UpdateFunctionInput(environment_variables={"GREETING": "two"})
    sdk.update_function("echo", fc.UpdateFunctionRequest(body=update))
    v2 = publish(sdk, "echo")
    verify = _trigger(sdk, "echo", "verify", v2)
    assert httpx.get(f"{verify}/env", timeout=30).json()["GREETING"] == "two"
    assert httpx.get(f"{live}/env", timeout=30).json()["GREETING"] == "one"
    assert httpx.get(f"{live}/pid", timeout=30).text == pid_one

    # Cutover is one alias update: the same URL now runs version 2.
    sdk.update_alias("echo", "live", fc.UpdateAliasRequest(body=fc.UpdateAliasInput(version_id=v2)))
    sdk.delete_trigger("echo", "verify")
    assert httpx.get(f"{live}/env", timeout=30).json()["GREETING"] == "two"
    # ... and back (rollback).
    sdk.update_alias("echo", "live", fc.UpdateAliasRequest(body=fc.UpdateAliasInput(version_id="1")))
    assert httpx.get(f"{live}/env", timeout=30).json()["GREETING"] == "one"
