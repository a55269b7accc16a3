"""The whole flow through real workers: POST → 202 → succeeded → redeploy from the CLI → delete.

Runs on the embedded default (file broker + SQLite), on Redis + PostgreSQL with two worker processes,
and on RabbitMQ (+ PostgreSQL) with two worker processes.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from typer.testing import CliRunner

from deployer.cli.main import app as cli_app

pytestmark = pytest.mark.integration

IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:1.0"
IMAGE_V2 = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:2.0"
CANARY = "canary-secret-7f3a9c"


def deploy_body(name: str, **extra):
    return {
        "name": name,
        "image": IMAGE,
        "command": ["mcp-server-time"],
        "secret_env": {"TOKEN": CANARY},
        **extra,
    }


def run_flow(stack, name: str) -> None:
    with stack.http() as http:
        resp = http.post("/v1/deployments", json=deploy_body(name))
        assert resp.status_code == 202, resp.text
        assert resp.headers["Location"].endswith(f"/v1/deployments/{resp.json()['id']}")
        dep_id = resp.json()["id"]
        assert CANARY not in resp.text

    dep = stack.wait_for(dep_id, {"succeeded", "failed"})
    assert dep["status"] == "succeeded", (dep, stack.worker_logs())
    fn = dep["result"]["function_result"]
    trig = dep["result"]["trigger_result"]
    assert set(fn) >= {"headers", "statusCode", "body"} and set(trig) >= {"headers", "statusCode", "body"}
    container = fn["body"]["customContainerConfig"]
    assert container["command"][0] == "mcp-fc-bridge" and container["port"] == 8080
    assert fn["body"]["environmentVariables"]["TOKEN"] == "***"
    url = trig["body"]["httpTrigger"]["urlInternet"]
    assert url and dep["urls"]["sse"] is None and dep["urls"]["mcp"] == f"{url}/mcp"  # streamable-http
    assert dep["progress"] == 100 and dep["attempts"] >= 1

    with stack.http() as http:
        task = http.get(f"/v1/tasks/{dep['task_id']}").json()
        assert task["ready"] is True and task["successful"] is True, task
        # a request without a key is refused; another owner sees nothing
        assert http.get(f"/v1/deployments/{dep_id}", headers={"Authorization": ""}).status_code == 401
        with stack.http(stack.other_key) as other:
            assert other.get(f"/v1/deployments/{dep_id}").status_code == 404
            assert other.get(f"/v1/deployments/{name}").status_code == 404

    # redeploy from the CLI: new image, same trigger URL
    result = CliRunner().invoke(
        cli_app,
        [
            "--api-url",
            stack.api_url,
            "--api-key",
            stack.api_key,
            "redeploy",
            name,
            "--image",
            IMAGE_V2,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    redeployed = json.loads(result.stdout)
    assert redeployed["status"] == "succeeded", redeployed
    assert redeployed["result"]["function_result"]["body"]["customContainerConfig"]["image"] == IMAGE_V2
    assert redeployed["result"]["trigger_result"]["body"]["httpTrigger"]["urlInternet"] == url
    assert stack.fc.backend.get_function(name)["customContainerConfig"]["image"] == IMAGE_V2

    with stack.http() as http:
        assert http.delete(f"/v1/deployments/{dep_id}").status_code == 202
    assert stack.wait_for(dep_id, {"deleted", "failed"})["status"] == "deleted"
    assert name not in {f["functionName"] for f in stack.fc.backend.list_functions(limit=100)["functions"]}


def run_burst(stack, prefix: str, count: int) -> None:
    """Several deploys at once, so both workers take part; each ends succeeded, one function each."""
    with stack.http() as http:
        ids = [
            http.post("/v1/deployments", json=deploy_body(f"{prefix}-{i}")).json()["id"] for i in range(count)
        ]
    with ThreadPoolExecutor(max_workers=count) as pool:
        finals = list(pool.map(lambda i: stack.wait_for(i, {"succeeded", "failed"}), ids))
    assert [d["status"] for d in finals] == ["succeeded"] * count, [d.get("error") for d in finals]
    names = [f["functionName"] for f in stack.fc.backend.list_functions(limit=100)["functions"]]
    assert sorted(n for n in names if n.startswith(prefix)) == sorted(f"{prefix}-{i}" for i in range(count))


def test_embedded_default(stack_factory):
    stack = stack_factory(workers=1, pool="threads", concurrency=4)
    run_flow(stack, "mcp-embedded")


def test_redis_and_postgres_with_two_workers(stack_factory, redis_url, redis_results_url, postgres_url):
    stack = stack_factory(
        broker_url=redis_url,
        database_url=postgres_url,
        result_backend=redis_results_url,
        workers=2,
        concurrency=2,
    )
    run_flow(stack, "mcp-redis")
    run_burst(stack, "mcp-redis-burst", 6)


def test_rabbitmq_with_two_workers(stack_factory, rabbitmq_url, postgres_url):
    stack = stack_factory(broker_url=rabbitmq_url, database_url=postgres_url, workers=2, concurrency=2)
    run_flow(stack, "mcp-rabbit")
    run_burst(stack, "mcp-rabbit-burst", 6)
