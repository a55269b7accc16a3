"""Overhead: POST → `succeeded` through the service against the bare SDK sequence, side by side.

Both run on the same emulator (100 ms injected per FC call, functions Pending for PENDING_S) with the
same readiness schedule: first wait READY_POLL_S, ×1.5 per poll, at most READY_POLL_MAX_S (the service
gets it through MCPFC_READY_POLL_S / MCPFC_READY_POLL_MAX_S). Bare and service runs alternate, so drift
hits both. The service runs with the MCP probe off (the bare sequence does not probe); a second pair of
rows compares probe-on against bare SDK + the same `deployer.ops.probe.probe` call when the emulator runs
functions (it is skipped, and says so, while the emulator's data plane answers 503).

The service's clients alternate between long-poll (`?wait=`) and plain polling every SHORT_POLL_S (the
long poll's own freshness), which gives the "requests per deploy" row.
"""

from __future__ import annotations

import time
from typing import Any

from alibabacloud_fc20230330 import models as fc_models

from benchmarks.common import (
    COMMAND,
    IMAGE,
    Row,
    Stack,
    log,
    median,
    pct,
    unique_name,
)
from deployer.fc import spec
from deployer.fc.endpoint_auth import mint_token, new_signing_key
from deployer.fc.gateway import function_readiness, make_client
from schemas import DeployRequest

PENDING_S = 1.0
READY_POLL_S = 0.5
READY_POLL_MAX_S = 10.0
SHORT_POLL_S = 0.1
POLL_ENV = {"MCPFC_READY_POLL_S": str(READY_POLL_S), "MCPFC_READY_POLL_MAX_S": str(READY_POLL_MAX_S)}


def poll_delay(polls: int) -> float:
    """The service's readiness schedule (tasks/deploy.py wait_step), for the bare loop."""
    return min(READY_POLL_MAX_S, READY_POLL_S * 1.5 ** (polls - 1))


class Bare:
    """CreateFunction, wait Active, PublishFunctionVersion, (with probe: a verify trigger on the version,
    the probe, DeleteTrigger), CreateAlias `live`, CreateTrigger on `live`: the service's release sequence
    with the official SDK, inputs built by deployer.fc.spec."""

    def __init__(self, stack: Stack) -> None:
        self.client = make_client(stack.settings())
        self.key = new_signing_key()
        self.auth = spec.EndpointAuth(jwks=self.key.jwks())

    def deploy(self, name: str, *, probe: bool = False, timeout: float = 120) -> float:
        req = DeployRequest(name=name, image=IMAGE, command=COMMAND)
        started = time.monotonic()
        self.client.create_function(fc_models.CreateFunctionRequest(body=spec.create_function_input(req)))
        polls = 0
        while True:
            body = self.client.get_function(name, fc_models.GetFunctionRequest()).to_map().get("body") or {}
            readiness, reason = function_readiness(body)
            if readiness == "failed":
                raise RuntimeError(f"bare deploy {name}: {reason}")
            if readiness == "ready":
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"bare deploy {name} not Active within {timeout:.0f} s")
            polls += 1
            time.sleep(poll_delay(polls))
        publish = fc_models.PublishFunctionVersionRequest(
            body=fc_models.PublishVersionInput(description=spec.release_marker(name, 1))
        )
        version = self.client.publish_function_version(name, publish).body.version_id
        if probe:
            from deployer.ops.probe import probe as mcp_probe

            verify = spec.create_trigger_input(
                req, self.auth, name=spec.VERIFY_TRIGGER_NAME, qualifier=version
            )
            trigger = self.client.create_trigger(name, fc_models.CreateTriggerRequest(body=verify)).to_map()
            http = (trigger.get("body") or {}).get("httpTrigger") or {}
            urls = spec.endpoint_urls(http.get("urlInternet"), http.get("urlIntranet"))
            token = mint_token(self.key, subject=f"bench/{name}")
            mcp_probe(
                urls.mcp or "",
                transport="streamable-http",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
        alias = fc_models.CreateAliasInput(alias_name=spec.LIVE_ALIAS, version_id=version)
        self.client.create_alias(name, fc_models.CreateAliasRequest(body=alias))
        self.client.create_trigger(
            name,
            fc_models.CreateTriggerRequest(
                body=spec.create_trigger_input(req, self.auth, qualifier=spec.LIVE_ALIAS)
            ),
        )
        if probe:
            self.client.delete_trigger(name, spec.VERIFY_TRIGGER_NAME)
        return time.monotonic() - started


def service_deploy(
    stack: Stack, http: Any, name: str, *, long_poll: bool, timeout: float = 120
) -> tuple[float, int]:
    """POST, then wait for `succeeded` the way a client does; returns (seconds, GET requests)."""
    started = time.monotonic()
    resp = http.post("/v1/deployments", json={"name": name, "image": IMAGE, "command": COMMAND})
    if resp.status_code != 202:
        raise RuntimeError(f"POST answered {resp.status_code}: {resp.text[:300]}")
    dep_id = resp.json()["id"]
    if long_poll:
        _, requests = stack.wait_terminal(http, dep_id, timeout=timeout, wait_s=30)
        return time.monotonic() - started, requests
    requests = 0
    while time.monotonic() - started < timeout:
        dep = http.get(f"/v1/deployments/{dep_id}").json()
        requests += 1
        if dep["status"] == "succeeded":
            return time.monotonic() - started, requests
        if dep["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"deployment {name} ended {dep['status']}: {dep.get('error')}")
        time.sleep(SHORT_POLL_S)
    raise RuntimeError(f"deployment {name} did not succeed within {timeout:.0f} s")


def emulator_runs_functions(bare: Bare) -> tuple[bool, str]:
    try:
        bare.deploy(unique_name("probecheck"), probe=True, timeout=60)
        return True, ""
    except Exception as exc:  # noqa: BLE001 - any failure means: no probe-able endpoint here
        return False, str(exc)[:160]


def run(*, quick: bool, kind: str, pool: str, concurrency: int) -> list[Row]:
    n = 8 if quick else 30
    rows: list[Row] = []
    with Stack(kind, pending_seconds=PENDING_S, env_extra=POLL_ENV) as stack:
        stack.start_worker(pool, concurrency)
        stack.wait_workers_ready()
        bare = Bare(stack)
        bare.deploy(unique_name("warm"))  # warm the SDK client and the emulator
        bare_s: list[float] = []
        service_s: list[float] = []
        requests = {True: [], False: []}  # long_poll -> GETs per deploy
        with stack.http() as http:
            for i in range(n):
                long_poll = i % 2 == 0
                order = (0, 1) if i % 2 == 0 else (1, 0)
                for which in order:
                    if which == 0:
                        bare_s.append(bare.deploy(unique_name("bare")))
                    else:
                        seconds, reqs = service_deploy(stack, http, unique_name("svc"), long_poll=long_poll)
                        service_s.append(seconds)
                        requests[long_poll].append(reqs)
        log(
            f"overhead: bare p50 {median(bare_s):.3f}s service p50 {median(service_s):.3f}s "
            f"(GETs per deploy: long-poll {requests[True]}, polling {requests[False]})"
        )
        probe_note = (
            f"service with MCP probe disabled (MCPFC_PROBE_ENABLED=false), bare sequence without probe; "
            f"{FC_NOTE}; n={n} each, interleaved"
        )
        rows.append(
            Row(
                "overhead p50: POST→succeeded vs bare SDK (probe off)",
                median(service_s),
                median(bare_s),
                "<= 1.05",
                "s",
                probe_note,
            )
        )
        rows.append(
            Row(
                "overhead p95: POST→succeeded vs bare SDK (probe off)",
                pct(service_s, 0.95),
                pct(bare_s, 0.95),
                None,
                "s",
            )
        )
        rows.append(
            Row(
                "long-poll: GETs per deploy, ?wait=30 vs polling every 0.1 s",
                median(requests[True]),
                median(requests[False]),
                "<= 0.5",
                "req",
                f"same deploys as the overhead rows; polling at {SHORT_POLL_S} s matches the long poll's "
                "freshness (a long poll answers on the change: PostgreSQL's notification, else a re-read "
                "every 0.1 s)",
            )
        )

        ok, why = emulator_runs_functions(bare)
    if not ok:
        rows.append(
            Row(
                "overhead p50: POST→succeeded vs bare SDK + MCP probe (probe on)",
                None,
                None,
                "<= 1.05",
                "s",
                f"skipped: the emulator does not serve MCP on trigger URLs yet ({why})",
                skipped=True,
            )
        )
        return rows

    with Stack(
        kind, pending_seconds=PENDING_S, env_extra={**POLL_ENV, "MCPFC_PROBE_ENABLED": "true"}
    ) as stack:
        stack.start_worker(pool, concurrency)
        stack.wait_workers_ready()
        bare = Bare(stack)
        bare.deploy(unique_name("warm"), probe=True)
        bare_s, service_s = [], []
        n = 4 if quick else n  # each probe starts a real mcp-proxy: slower
        with stack.http() as http:
            for i in range(n):
                for which in (0, 1) if i % 2 == 0 else (1, 0):
                    if which == 0:
                        bare_s.append(bare.deploy(unique_name("bare"), probe=True))
                    else:
                        service_s.append(service_deploy(stack, http, unique_name("svc"), long_poll=True)[0])
    rows.append(
        Row(
            "overhead p50: POST→succeeded vs bare SDK + MCP probe (probe on)",
            median(service_s),
            median(bare_s),
            "<= 1.05",
            "s",
            f"{FC_NOTE}; probe = deployer.ops.probe.probe on both sides; n={n} each",
        )
    )
    rows.append(
        Row(
            "overhead p95: POST→succeeded vs bare SDK + MCP probe (probe on)",
            pct(service_s, 0.95),
            pct(bare_s, 0.95),
            None,
            "s",
        )
    )
    return rows


FC_NOTE = (
    f"100 ms per FC call, functions Pending {PENDING_S:g} s, readiness poll {READY_POLL_S:g} s ×1.5 "
    f"up to {READY_POLL_MAX_S:g} s on both sides"
)
