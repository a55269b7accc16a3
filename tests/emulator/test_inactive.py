"""FC's fourth function state, ``Inactive`` ("cannot be invoked"; "redeploy or trigger the function to return
it to Pending"), set through the control API, and how mcp-fc's gateway reads it."""

from __future__ import annotations

import httpx
from alibabacloud_fc20230330 import models as fc

from deployer.fc.gateway import function_readiness


def _body(client, name: str) -> dict:
    return client.get_function(name, fc.GetFunctionRequest()).to_map()["body"]


def _deactivate(emulator, name: str) -> httpx.Response:
    return httpx.post(f"{emulator.url}/_emulator/functions/{name}/deactivate")


def test_an_inactive_function_is_not_ready_and_an_update_brings_it_back(
    emulator, client, created, wait_until
):
    wait_until(lambda: _body(client, created)["state"] == "Active")
    r = _deactivate(emulator, created)
    assert r.status_code == 200 and r.json()["state"] == "Inactive"
    body = _body(client, created)
    assert body["state"] == "Inactive" and body["stateReason"]
    assert function_readiness(body)[0] == "inactive"
    # it stays Inactive by itself
    assert _body(client, created)["state"] == "Inactive"

    client.update_function(created, fc.UpdateFunctionRequest(body=fc.UpdateFunctionInput(timeout=60)))
    body = _body(client, created)
    assert body["state"] == "Pending" and function_readiness(body)[0] == "pending"
    wait_until(lambda: function_readiness(_body(client, created))[0] == "ready")
    assert _body(client, created)["state"] == "Active"


def test_an_invocation_answers_not_ready_and_wakes_the_function(
    emulator, client, created, http_trigger_input, wait_until
):
    url = client.create_trigger(created, fc.CreateTriggerRequest(body=http_trigger_input())).body
    url = url.http_trigger.url_internet
    wait_until(lambda: _body(client, created)["state"] == "Active")
    _deactivate(emulator, created)
    r = httpx.get(f"{url}/sse", timeout=10)
    assert r.status_code == 503 and r.json()["Code"] == "FunctionNotReady"
    assert _body(client, created)["state"] in ("Pending", "Active")
    wait_until(lambda: _body(client, created)["state"] == "Active")


def test_deactivating_an_unknown_function_is_a_404(emulator):
    r = _deactivate(emulator, "nope")
    assert r.status_code == 404 and r.json()["Code"] == "FunctionNotFound"


def test_readiness_needs_active_and_no_update_in_progress():
    assert function_readiness({"state": "Active", "lastUpdateStatus": "Successful"})[0] == "ready"
    assert function_readiness({"state": "Active", "lastUpdateStatus": None})[0] == "ready"
    assert function_readiness({})[0] == "ready"  # no state reported at all
    assert function_readiness({"state": "Active", "lastUpdateStatus": "InProgress"})[0] == "pending"
    assert function_readiness({"state": "Pending"})[0] == "pending"
    assert function_readiness({"state": "Inactive", "lastUpdateStatus": "Successful"})[0] == "inactive"
    assert function_readiness({"state": "Hibernating"})[0] == "pending"  # an unknown state is not ready
    assert function_readiness({"state": "Failed", "stateReason": "pull"}) == ("failed", "pull")
