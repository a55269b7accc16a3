"""A canary secret goes in as secret_env and must come out nowhere but in the function's environment:
not in API responses, CLI output, logs, broker data or database files."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from deployer.cli.main import app as cli_app

pytestmark = pytest.mark.integration

CANARY = "canary-7d1f0e5b9c2a4e68"
IMAGE = "registry.cn-hangzhou.aliyuncs.com/mcp-fc/mcp-server-time:1.0"


class Capture(logging.Handler):
    """Every log record of this process, with its message, arguments and extra fields."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(f"{record.getMessage()} {record.__dict__!r}")


@pytest.fixture
def captured_logs():
    handler = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def files_under(path: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def redis_dump(url: str) -> bytes:
    """Every key and value in the Redis database, as bytes."""
    import redis

    client = redis.Redis.from_url(url)
    out = []
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"string":
            out.append(client.get(key) or b"")
        elif kind == b"list":
            out += client.lrange(key, 0, -1)
        elif kind == b"hash":
            out += [k + b"=" + v for k, v in client.hgetall(key).items()]
        elif kind == b"set":
            out += list(client.smembers(key))
        elif kind == b"zset":
            out += client.zrange(key, 0, -1)
        out.append(key)
    return b"\n".join(out)


def exercise(stack, runner: CliRunner) -> list[str]:
    """Deploy with the canary through the CLI and the API, read every route, fail one on purpose."""
    outputs: list[str] = []
    cli = ["--api-url", stack.api_url, "--api-key", stack.api_key]
    result = runner.invoke(
        cli_app,
        [
            *cli,
            "deploy",
            "canary-cli",
            "--image",
            IMAGE,
            "--secret-env",
            f"API_TOKEN={CANARY}",
            "--",
            "mcp-server-time",
        ],
    )
    outputs.append(result.output)
    assert result.exit_code == 0, result.output
    with stack.http() as http:
        resp = http.post(
            "/v1/deployments",
            json={
                "name": "canary-api",
                "image": IMAGE,
                "command": ["mcp-server-time"],
                "secret_env": {"API_TOKEN": CANARY},
            },
        )
        outputs.append(resp.text)
        dep_id = resp.json()["id"]
        dep = stack.wait_for(dep_id, {"succeeded", "failed"})
        assert dep["status"] == "succeeded", dep
        # a failure path: the trigger refused for good, after the function was written with the canary
        stack.fc.faults.set("CreateTrigger", error_rate=1.0, error_status=400, error_code="InvalidArgument")
        resp = http.post(
            "/v1/deployments",
            json={
                "name": "canary-fail",
                "image": IMAGE,
                "command": ["mcp-server-time"],
                "secret_env": {"API_TOKEN": CANARY},
            },
        )
        failed = stack.wait_for(resp.json()["id"], {"succeeded", "failed"})
        stack.fc.faults.clear()
        # with releases the first trigger written is the new version's verify trigger
        assert failed["status"] == "failed" and failed["error"]["step"] == "verify"
        outputs.append(json.dumps(failed))
        for path in (
            f"/v1/deployments/{dep_id}",
            "/v1/deployments",
            "/v1/deployments?limit=1",
            f"/v1/deployments/{dep_id}/client-config",
            f"/v1/tasks/{dep['task_id']}",
            "/metrics",
            "/openapi.json",
        ):
            outputs.append(http.get(path).text)
        outputs.append(http.get(f"/v1/deployments/{dep_id}/events", timeout=30).text)
        redeploy = http.post(f"/v1/deployments/{dep_id}/redeploy", json={"secret_env": {"API_TOKEN": CANARY}})
        outputs.append(redeploy.text)
        stack.wait_for(dep_id, {"succeeded", "failed"})
    for args in (
        ["status", "canary-cli", "--json"],
        ["status", "canary-cli"],
        ["list", "--json"],
        ["list"],
        ["config", "canary-cli"],
        ["redeploy", "canary-cli", "--secret-env", f"API_TOKEN={CANARY}"],
    ):
        result = runner.invoke(cli_app, [*cli, *args])
        outputs.append(result.output)
        assert result.exit_code == 0, (args, result.output)
    # a CLI validation error that involves the secret
    result = runner.invoke(
        cli_app,
        [*cli, "deploy", "x", "--image", IMAGE, "--secret-env", f"FC_BAD={CANARY}", "--", "mcp-server-time"],
    )
    assert result.exit_code == 2
    outputs.append(result.output)
    return outputs


def assert_canary_absent(where: dict[str, bytes | str]) -> None:
    leaks = [
        name
        for name, data in where.items()
        if (CANARY.encode() if isinstance(data, bytes) else CANARY) in data
    ]
    assert not leaks, f"the canary secret leaked into: {leaks}"


def assert_canary_reached_the_function(stack, name: str) -> None:
    """The positive control: the secret really was deployed (so the searches above could have found it)."""
    assert stack.fc.backend.get_function(name)["environmentVariables"]["API_TOKEN"] == CANARY


def test_canary_secret_appears_nowhere_on_the_embedded_default(stack_factory, captured_logs):
    stack = stack_factory(workers=1, pool="threads", concurrency=4)
    runner = CliRunner()
    outputs = exercise(stack, runner)
    assert_canary_reached_the_function(stack, "canary-cli")
    stack.stop_workers()  # flush the worker's logs and let SQLite checkpoint
    where: dict[str, bytes | str] = {f"output {i}": text for i, text in enumerate(outputs)}
    where.update({f"log {i}": text for i, text in enumerate(captured_logs.texts)})
    where.update(files_under(stack.settings.data_dir))  # SQLite (+ WAL), the file broker, worker logs
    assert any(p.endswith(".db") for p in where), "the database file was searched"
    assert any("broker" in p for p in where), "the broker's files were searched"
    assert any("worker-" in p for p in where), "the worker's log was searched"
    assert_canary_absent(where)


def test_canary_secret_appears_nowhere_with_redis_and_postgres(
    stack_factory, captured_logs, redis_url, redis_results_url, postgres_url
):
    results = redis_results_url
    stack = stack_factory(broker_url=redis_url, database_url=postgres_url, result_backend=results, workers=1)
    outputs = exercise(stack, CliRunner())
    assert_canary_reached_the_function(stack, "canary-api")
    stack.stop_workers()
    where: dict[str, bytes | str] = {f"output {i}": text for i, text in enumerate(outputs)}
    where.update({f"log {i}": text for i, text in enumerate(captured_logs.texts)})
    where.update(files_under(stack.settings.data_dir))
    where["redis broker"] = redis_dump(redis_url)
    where["redis results"] = redis_dump(results)
    dump = subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", postgres_url.rsplit("/", 1)[1]],
        capture_output=True,
        check=True,
    )
    where["postgres dump"] = dump.stdout
    assert b"deployments" in dump.stdout
    assert_canary_absent(where)


def test_api_errors_never_echo_secret_input(stack_factory):
    stack = stack_factory(workers=0, probe=False)
    with stack.http() as http:
        bad = http.post(
            "/v1/deployments",
            json={
                "name": "x",
                "image": IMAGE,
                "command": ["a"],
                "secret_env": {"1BAD": CANARY, "OK": CANARY * 400},
            },
        )
    assert bad.status_code == 422 and CANARY not in bad.text
    assert httpx.get(f"{stack.api_url}/healthz").status_code == 200
