"""DeployRequest → the SDK's function and trigger inputs. Pure functions: no I/O, no clock, no randomness.

The container runs the mcp-fc bridge (bridge/mcp_fc_bridge, `mcp-fc-bridge`) in front of the stdio server:
`mcp-fc-bridge --port 8080 --host 0.0.0.0 [--transport sse] [--allow-origin ...] -- <server argv>`. It
serves `/mcp` statelessly for MCP 2026-07-28 and the handshake revisions, `/sse` too with `--transport
sse`, passes the function's environment (the user's `env` and `secret_env`) to the server, and its
`/status` fails once the server died or stopped answering. The `--port 8080 --host 0.0.0.0 ... -- argv`
shape is what FC needs (a listener on 0.0.0.0:8080) and what the emulator rewrites and watches.
`proxy: mcp-proxy` (the default, a name kept from the first bridge) means this bridge (docs/decisions.md).

The container's process is `entrypoint + command`, both set explicitly (fc3-fidelity-audit.md row 22): FC
appends `command` to the image's ENTRYPOINT when `entrypoint` is unset, so an image whose ENTRYPOINT is not
a pass-through (e.g. `catatonit -- mcp-proxy`) would run a garbled command.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alibabacloud_fc20230330 import models as fc

from deployer.errors import SpecError
from deployer.fc.code_spec import (
    CODE_RUNTIME,
    RUNTIME_ENV,
    CodePackage,
    code_environment,
    code_location,
    layer_path,
    runtime_config,
)
from schemas import AuthType, DeployRequest, ProxyKind, Transport, Urls
from schemas.deploy import Init
from schemas.limits import CONTAINER_PORT
from schemas.package import parse_package_command

RUNTIME = "custom-container"
HANDLER = "index.handler"
TRIGGER_NAME = "http"
QUALIFIER = "LATEST"
#: The alias the endpoint's trigger serves once a deployment has releases (its URL never changes).
LIVE_ALIAS = "live"
#: The short-lived trigger on a new version, removed once the version is verified (or refused).
VERIFY_TRIGGER_NAME = "verify"


def release_marker(deployment_id: str, release: int) -> str:
    """The description of a deployment's release N's version: a retry after a lost PublishFunctionVersion
    response finds its own version by it instead of publishing a second one."""
    return f"mcp-fc {deployment_id} release {release}"


SSE_PATH = "/sse"
MCP_PATH = "/mcp"
#: The bridge's health route: 200 only while the stdio server runs and answers a ping.
HEALTH_PATH = "/status"
#: The bridge's program, on PATH in the image (runtime/Dockerfile) and in the deployer's environment.
BRIDGE = "mcp-fc-bridge"

# FC strips the tokenLookup prefix literally, so it ends with the space that separates it from the token
# (devsapp/fc3 docs/zh/yaml/triggers.md; its jwt e2e test sends "Bearer "). No claimPassBy: FC 3.0 calls it
# optional, and its documented targets (header, form, cookie) do not include the query devsapp's
# `query::` placeholder names.
JWT_TOKEN_LOOKUP = "header:Authorization:Bearer "

# PID 1 in front of the bridge: forwards signals and reaps the stdio server's children. The mcp-fc runtime
# image (runtime/Dockerfile) has it on PATH; `init: none` runs the bridge as PID 1 instead.
TINI_ENTRYPOINT = ["tini", "--"]

SSE_METHODS = ["GET", "POST", "OPTIONS"]
# FC's streamable affinity (and any stateless client) needs DELETE to end a session.
STREAMABLE_METHODS = ["GET", "POST", "DELETE", "OPTIONS"]


@dataclass(frozen=True)
class EndpointAuth:
    """What the trigger checks callers against. Keys and tokens are made elsewhere (they need randomness)."""

    jwks: dict[str, Any] | None = None


def proxy_command(req: DeployRequest) -> list[str]:
    """The container command: the bridge on 0.0.0.0:8080, then `--`, then the stdio server's argv."""
    if req.proxy == ProxyKind.none:
        return list(req.command)
    cmd = [BRIDGE, "--port", str(CONTAINER_PORT), "--host", "0.0.0.0"]
    if req.transport == Transport.sse:
        cmd += ["--transport", "sse"]
    if req.allow_origins:
        cmd += ["--allow-origin", *req.allow_origins]
    cmd += ["--", *req.command]
    return cmd


def environment(req: DeployRequest) -> dict[str, str]:
    """The function's environment: plain env plus the decrypted secret env."""
    return {**req.env, **req.secret_values()}


def session_affinity(req: DeployRequest) -> tuple[str, str | None]:
    """FC session affinity and its JSON-string config for the transport."""
    if req.transport == Transport.sse:
        # The request's own setting, else FC's default (20) capped at half the instance concurrency: each
        # SSE session's stream holds one request slot and its POSTs need others (DeployRequest docstring).
        sessions = req.sessions_per_instance()
        config = {"sseEndpointPath": SSE_PATH, "sessionConcurrencyPerInstance": sessions}
        return "MCP_SSE", json.dumps(config, separators=(",", ":"))
    return "NONE", None


#: FC's own check of the bridge's /status every 2 s: this many failures in a row and FC replaces the instance,
#: so a hung server is replaced about 13 s after it stopped answering (30 made it ~2 minutes of failed calls,
#: issue 26 #14). Start-up patience is not this: FC fails a start whose initial check fails (the audit's row
#: 24), and the bridge binds its port only once its server answers, so the checks meet a ready server. The
#: worker passes MCPFC_FC_HEALTH_FAILURE_THRESHOLD.
FC_HEALTH_FAILURES = 5


def health_check(
    req: DeployRequest, failure_threshold: int = FC_HEALTH_FAILURES
) -> fc.CustomHealthCheckConfig | None:
    if req.proxy == ProxyKind.none:
        return None
    return fc.CustomHealthCheckConfig(
        http_get_url=HEALTH_PATH,
        initial_delay_seconds=1,
        period_seconds=2,
        timeout_seconds=3,
        failure_threshold=failure_threshold,
        success_threshold=1,
    )


def container_process(req: DeployRequest) -> tuple[list[str] | None, list[str] | None]:
    """`(entrypoint, command)` of the container.

    With a bridge both are set, so the process is exactly `tini -- <bridge argv>` (or the bridge argv alone
    with `init: none`) whatever the image's ENTRYPOINT and CMD are. `proxy: none` keeps the image's own
    ENTRYPOINT; a given `command` replaces the image's CMD, as FC documents for `command`.
    """
    if req.proxy == ProxyKind.none:
        return None, list(req.command) or None
    argv = proxy_command(req)
    if req.init == Init.tini:
        return list(TINI_ENTRYPOINT), argv
    return argv[:1], argv[1:]


def container_config(
    req: DeployRequest, health_failures: int = FC_HEALTH_FAILURES
) -> fc.CustomContainerConfig:
    entrypoint, command = container_process(req)
    return fc.CustomContainerConfig(
        image=req.image,
        port=CONTAINER_PORT,
        entrypoint=entrypoint,
        command=command,
        acr_instance_id=req.acr_instance_id,
        health_check_config=health_check(req, health_failures),
    )


def _vpc(req: DeployRequest) -> fc.VPCConfig | None:
    if req.vpc is None:
        return None
    return fc.VPCConfig(
        vpc_id=req.vpc.vpc_id,
        v_switch_ids=list(req.vpc.vswitch_ids),
        security_group_id=req.vpc.security_group_id,
    )


def _log(req: DeployRequest) -> fc.LogConfig | None:
    if req.log is None:
        return None
    return fc.LogConfig(
        project=req.log.project,
        logstore=req.log.logstore,
        enable_request_metrics=True,
        enable_instance_metrics=True,
    )


def bridge_flags(req: DeployRequest) -> list[str]:
    """The bridge's own flags, between its program and the `--` before the server's argv."""
    return proxy_command(req)[1 : proxy_command(req).index("--")]


def _runtime_fields(req: DeployRequest, health_failures: int, package: CodePackage | None) -> dict[str, Any]:
    """The image's fields, or a code package's (deployer/fc/code_spec.py) when the request has no image."""
    if req.image is not None:
        return dict(
            runtime=RUNTIME,
            environment_variables=environment(req),
            custom_container_config=container_config(req, health_failures),
        )
    server = parse_package_command(req.command)
    assert server is not None  # DeployRequest refuses an image-less request without one
    if package is None:
        # Without the build (a drift check, a late-write check): the fields the request alone settles;
        # UpdateFunction leaves the code, layers and command as they are.
        env = {"PATH": layer_path(server.ecosystem.value), **RUNTIME_ENV, **environment(req)}
        return dict(runtime=CODE_RUNTIME, environment_variables=env)
    return dict(
        runtime=CODE_RUNTIME,
        code=code_location(package),
        layers=list(package.layers),
        environment_variables=code_environment(package, environment(req)),
        custom_runtime_config=runtime_config(
            package, bridge_flags(req), server.args, health_check(req, health_failures)
        ),
    )


def _function_fields(
    req: DeployRequest, health_failures: int, package: CodePackage | None = None
) -> dict[str, Any]:
    affinity, affinity_config = session_affinity(req)
    return dict(
        **_runtime_fields(req, health_failures, package),
        handler=HANDLER,
        description=req.description,
        cpu=req.cpu,
        memory_size=req.memory_mb,
        disk_size=req.disk_mb,
        timeout=req.timeout_s,
        instance_concurrency=req.instance_concurrency,
        internet_access=True,
        session_affinity=affinity,
        session_affinity_config=affinity_config,
        vpc_config=_vpc(req),
        log_config=_log(req),
        role=req.role,
        # The role's STS credentials would reach the MCP server: the bridge passes its environment on.
        disable_inject_credentials="None" if req.inject_credentials else "All",
    )


def create_function_input(
    req: DeployRequest, *, health_failures: int = FC_HEALTH_FAILURES, package: CodePackage | None = None
) -> fc.CreateFunctionInput:
    return fc.CreateFunctionInput(function_name=req.name, **_function_fields(req, health_failures, package))


def update_function_input(
    req: DeployRequest, *, health_failures: int = FC_HEALTH_FAILURES, package: CodePackage | None = None
) -> fc.UpdateFunctionInput:
    """Every managed field explicitly, so an update converges to the spec (UpdateFunction is PATCH-like);
    a code package's `code` only when FC does not have it already."""
    return fc.UpdateFunctionInput(**_function_fields(req, health_failures, package))


def trigger_config(req: DeployRequest, auth: EndpointAuth) -> dict[str, Any]:
    methods = SSE_METHODS if req.transport == Transport.sse else STREAMABLE_METHODS
    config: dict[str, Any] = {
        "authType": req.auth.type.value,
        "methods": list(methods),
        "disableURLInternet": False,
    }
    if req.auth.type == AuthType.jwt:
        if not auth.jwks or not auth.jwks.get("keys"):
            raise SpecError("jwt endpoint auth needs the deployment's public signing keys (JWKS)")
        # The wire form devsapp/fc3 sends: an object inside the triggerConfig JSON string.
        config["authConfig"] = {"jwks": auth.jwks, "tokenLookup": JWT_TOKEN_LOOKUP}
    return config


def _trigger_config_json(req: DeployRequest, auth: EndpointAuth) -> str:
    return json.dumps(trigger_config(req, auth), separators=(",", ":"), sort_keys=True)


def create_trigger_input(
    req: DeployRequest, auth: EndpointAuth, *, name: str = TRIGGER_NAME, qualifier: str = QUALIFIER
) -> fc.CreateTriggerInput:
    return fc.CreateTriggerInput(
        trigger_name=name,
        trigger_type="http",
        qualifier=qualifier,
        trigger_config=_trigger_config_json(req, auth),
        description=f"mcp-fc {req.transport.value} endpoint",
    )


def update_trigger_input(
    req: DeployRequest, auth: EndpointAuth, *, qualifier: str = QUALIFIER
) -> fc.UpdateTriggerInput:
    return fc.UpdateTriggerInput(
        qualifier=qualifier,
        trigger_config=_trigger_config_json(req, auth),
        description=f"mcp-fc {req.transport.value} endpoint",
    )


def trigger_config_matches(current: str | dict[str, Any] | None, wanted: fc.UpdateTriggerInput) -> bool:
    """True when the trigger FC has already carries the config we want (so no UpdateTrigger is needed)."""
    if current is None:
        return False
    try:
        have = json.loads(current) if isinstance(current, str) else current
    except ValueError:
        return False
    return have == json.loads(wanted.trigger_config)


def endpoint_urls(
    url_internet: str | None, url_intranet: str | None, transport: Transport = Transport.streamable_http
) -> Urls:
    """The URLs an MCP client uses, on the trigger root: `/mcp` always (the bridge serves it in both
    transports), `/sse` only for transport sse: a streamable-http bridge answers 404 there (issue 26 #5)."""
    base = (url_internet or "").rstrip("/")
    return Urls(
        internet=url_internet,
        intranet=url_intranet,
        sse=f"{base}{SSE_PATH}" if base and transport == Transport.sse else None,
        mcp=f"{base}{MCP_PATH}" if base else None,
    )


def answer_body(answer: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `body` of an SDK answer in its to_map() shape (`headers`, `statusCode`, `body`); {} when none."""
    if not answer:
        return {}
    return answer.get("body") or {}


def trigger_urls(answer: Mapping[str, Any] | None, transport: Transport) -> Urls:
    """The endpoint URLs of a CreateTrigger/UpdateTrigger/GetTrigger answer (its `httpTrigger`)."""
    http = answer_body(answer).get("httpTrigger") or {}
    return endpoint_urls(http.get("urlInternet"), http.get("urlIntranet"), transport)
