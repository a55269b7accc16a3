"""GET /v1/deployments/{id}/logs: the server's own output, read through SLS GetLogs at a real emulator."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from deployer.api import create_app

from .conftest import CANARY, assert_problem, bearer, deploy_body, make_settings, new_key


@pytest.fixture
def api(fc, tmp_path):
    settings = make_settings(tmp_path, fc_endpoint=fc.url)
    with TestClient(create_app(settings)) as client:
        client.headers.update(bearer(new_key(settings)[1]))
        yield client


def _deploy(client, **overrides):
    r = client.post("/v1/deployments", json=deploy_body("mcp-time", **overrides))
    assert r.status_code == 202, r.text
    return r.json()


def test_lines_come_back_oldest_first_with_secrets_scrubbed(api, fc):
    dep = _deploy(api)
    fc.logs.append("mcp-time", "listening", instance_id="c-1", stream="stderr")
    fc.logs.append("mcp-time", f"token is {CANARY}", instance_id="c-1", stream="stderr")
    fc.logs.append("someone-else", "not mine", instance_id="c-2", stream="stderr")
    r = api.get(f"/v1/deployments/{dep['id']}/logs")
    assert r.status_code == 200, r.text
    page = r.json()
    assert [x["message"] for x in page["lines"]] == ["listening", "token is ***"]
    assert CANARY not in r.text
    assert page["lines"][0]["instance_id"] == "c-1" and page["lines"][0]["stream"] == "stderr"
    assert page["source"]["emulator"] is True and page["name"] == "mcp-time"


def test_tail_since_and_after(api, fc):
    _deploy(api)
    for i in range(5):
        fc.logs.append("mcp-time", f"line {i}", instance_id="c-1", stream="stdout")
    tail = api.get("/v1/deployments/mcp-time/logs", params={"tail": 2}).json()
    assert [x["message"] for x in tail["lines"]] == ["line 3", "line 4"]
    assert (
        api.get("/v1/deployments/mcp-time/logs", params={"since": "1h"}).json()["lines"][0]["message"]
        == "line 0"
    )
    assert (
        api.get("/v1/deployments/mcp-time/logs", params={"since": "2999-01-01T00:00:00Z"}).json()["lines"]
        == []
    )
    fc.logs.append("mcp-time", "line 5", instance_id="c-1", stream="stdout")
    newer = api.get("/v1/deployments/mcp-time/logs", params={"after": tail["cursor"]}).json()
    assert [x["message"] for x in newer["lines"]] == ["line 5"]
    again = api.get("/v1/deployments/mcp-time/logs", params={"after": newer["cursor"]}).json()
    assert again["lines"] == [] and again["cursor"] == newer["cursor"]


def test_bad_parameters_are_problems(api):
    _deploy(api)
    assert_problem(api.get("/v1/deployments/mcp-time/logs", params={"since": "yesterday"}), 422)
    # issue 26 #14: a duration that overflows (to infinity, or before 1970) was a 500 OverflowError
    for since in ("9" * 5000 + "s", "99999999999d", "0001-01-01T00:00:00Z"):
        r = api.get("/v1/deployments/mcp-time/logs", params={"since": since})
        assert_problem(r, 422)
        assert "before 1970" in r.json()["detail"] and len(r.text) < 1000
    assert_problem(api.get("/v1/deployments/mcp-time/logs", params={"after": "x:y"}), 400)
    assert_problem(api.get("/v1/deployments/mcp-time/logs", params={"tail": 99999}), 422)
    assert_problem(api.get("/v1/deployments/nope/logs"), 404)


def test_a_log_config_reads_its_project_and_logstore(fc, tmp_path):
    # an explicit SLS endpoint: the cloud path, with the deployment's own project and logstore
    settings = make_settings(tmp_path, sls_endpoint=fc.url)
    with TestClient(create_app(settings)) as api:
        api.headers.update(bearer(new_key(settings)[1]))
        _deploy(api, log={"project": "team-logs", "logstore": "mcp"})
        fc.logs.append(
            "mcp-time", "shipped", instance_id="c-1", stream="stderr", destination=("team-logs", "mcp")
        )
        page = api.get("/v1/deployments/mcp-time/logs").json()
        assert page["source"] == {"project": "team-logs", "logstore": "mcp", "emulator": False}
        assert [x["message"] for x in page["lines"]] == ["shipped"]


def test_without_a_log_config_on_fc_there_are_no_logs(tmp_path):
    settings = make_settings(tmp_path)  # the public FC endpoint: never called here
    with TestClient(create_app(settings)) as api:
        api.headers.update(bearer(new_key(settings)[1]))
        _deploy(api)
        problem = assert_problem(api.get("/v1/deployments/mcp-time/logs"), 409)
        assert "log: {project, logstore}" in problem["detail"]


def test_where_sls_is(tmp_path):
    from deployer.fc.sls import sls_endpoint

    emulator = make_settings(tmp_path, fc_endpoint="http://127.0.0.1:8931")
    assert sls_endpoint(emulator, "cn-hangzhou") == ("127.0.0.1:8931", "http", True)
    real_fc = make_settings(tmp_path, fc_endpoint="https://123.cn-shanghai.fc.aliyuncs.com")
    assert sls_endpoint(real_fc, "cn-shanghai") == ("cn-shanghai.log.aliyuncs.com", "https", False)
    explicit = make_settings(tmp_path, sls_endpoint="{region}-intranet.log.aliyuncs.com")
    assert sls_endpoint(explicit, "cn-beijing") == ("cn-beijing-intranet.log.aliyuncs.com", "https", False)


def test_the_servers_own_lines_come_first_whatever_the_bridge_says(api, fc):
    """The bridge's lines (69 of 76 were `Terminating session: None`) are hidden unless asked for; the tail
    counts the server's lines, and the cursor goes past the hidden ones (issue 26 #10)."""
    _deploy(api)
    fc.logs.append(
        "mcp-time", "[mcp-fc-bridge] INFO listening on 0.0.0.0:9000", instance_id="c-1", stream="stderr"
    )
    for i in range(2):
        fc.logs.append("mcp-time", f"server line {i}", instance_id="c-1", stream="stderr")
    fc.logs.append(
        "mcp-time", "INFO:root:server line 2", instance_id="c-1", stream="stderr"
    )  # Python's format
    for _ in range(60):
        fc.logs.append(
            "mcp-time", "[mcp-fc-bridge] INFO Terminating session: None", instance_id="c-1", stream="stderr"
        )
    fc.logs.append(
        "mcp-time", 'INFO:     127.0.0.1:5 - "POST /mcp HTTP/1.1" 200 OK', instance_id="c-1", stream="stderr"
    )
    page = api.get("/v1/deployments/mcp-time/logs", params={"tail": 2}).json()
    assert [x["message"] for x in page["lines"]] == ["server line 1", "INFO:root:server line 2"]
    default = api.get("/v1/deployments/mcp-time/logs").json()
    assert [x["message"] for x in default["lines"]] == [
        "server line 0",
        "server line 1",
        "INFO:root:server line 2",
    ]
    everything = api.get("/v1/deployments/mcp-time/logs", params={"bridge": "true"}).json()
    assert len(everything["lines"]) == 65
    fc.logs.append("mcp-time", "server line 3", instance_id="c-1", stream="stderr")
    newer = api.get("/v1/deployments/mcp-time/logs", params={"after": default["cursor"]}).json()
    assert [x["message"] for x in newer["lines"]] == ["server line 3"]
