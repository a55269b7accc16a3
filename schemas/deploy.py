"""The deploy request: what a user asks for, validated against FC 3.0's limits.

One module (~470 lines) on purpose: `DeployRequest` and its nested specs (auth, VPC, logs) are one pydantic
model whose validators tie fields together (cpu/memory ratio, session concurrency, transport and
proxy); FC's numbers themselves live in schemas/limits.py.
"""

from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from schemas import limits
from schemas.package import PACKAGE_COMMANDS, PackageCommand, parse_package_command


class Transport(StrEnum):
    """How MCP clients reach the endpoint. `streamable-http` (the default) is one `/mcp` URL; `sse` is the
    HTTP+SSE transport (`/sse` + `/messages/`), which MCP 2026-07-28 formally deprecates."""

    streamable_http = "streamable-http"
    sse = "sse"


def sse_deprecated(name: str = "NAME") -> str:
    """The warning a deploy's events carry when it uses `transport: sse` (also in the CLI help and docs)."""
    return (
        "transport sse is deprecated (MCP 2026-07-28 deprecates the HTTP+SSE transport, removal no earlier "
        "than 12 months after): it serves legacy clients only; convert it with "
        f"`mcp-fc redeploy {name} --transport streamable-http`"
    )


TRANSPORT_DESCRIPTION = (
    "`streamable-http` (default): one stateless `/mcp` URL. `sse`: **deprecated** (MCP 2026-07-28), the "
    "legacy `/sse` endpoint for clients that only speak HTTP+SSE; a deploy that asks for it gets a warning "
    "event"
)


class AuthType(StrEnum):
    anonymous = "anonymous"
    function = "function"
    jwt = "jwt"


#: Why `bearer` is refused (docs/decisions.md, audit rows 7-8): FC documents bearer-token triggers, but no
#: public API, SDK or devsapp source shows their triggerConfig JSON, so nothing we sent could be checked.
BEARER_REFUSED = (
    "auth type 'bearer' is not offered: Function Compute's wire format for bearer-token triggers is not "
    "public (SDK 4.8.3 lists only anonymous, function and jwt), so a deploy would fail at the trigger step. "
    "Use 'jwt' (the default): MCP clients send its token as a static 'Authorization: Bearer' header too"
)


class Init(StrEnum):
    """PID 1 of the container in front of the bridge (customContainerConfig.entrypoint)."""

    tini = "tini"
    none = "none"


class Priority(StrEnum):
    high = "high"
    normal = "normal"
    low = "low"


class ProxyKind(StrEnum):
    mcp_proxy = "mcp-proxy"
    none = "none"


MASK = "***"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class AuthSpec(_Strict):
    """How the HTTP trigger authenticates callers.

    `jwt` (the default) uses deployer-managed signing keys and a minted token that MCP clients send as a
    static `Authorization: Bearer` header. `anonymous` leaves the endpoint open. `bearer` is refused: FC's
    wire format for bearer-token triggers is not public.
    """

    type: AuthType = AuthType.jwt

    @field_validator("type", mode="before")
    @classmethod
    def _no_bearer(cls, v: Any) -> Any:
        if v == "bearer":
            raise _rule("auth_bearer_unverified", BEARER_REFUSED)
        return v


class VpcSpec(_Strict):
    vpc_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^vpc-[A-Za-z0-9]+$")]
    vswitch_ids: Annotated[list[Annotated[str, Field(pattern=r"^vsw-[A-Za-z0-9]+$")]], Field(min_length=1)]
    security_group_id: Annotated[str, Field(pattern=r"^sg-[A-Za-z0-9]+$")]


class LogSpec(_Strict):
    project: Annotated[str, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")]
    logstore: Annotated[str, Field(min_length=2, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*[a-z0-9]$")]


#: A rule a whole request breaks: (field, rule, message, the value it is about).
_Broken = tuple[str, str, str, Any]


def _rule(rule: str, message: str) -> PydanticCustomError:
    """A validation error whose type names the FC rule that was broken (the API shows it as `rule`)."""
    return PydanticCustomError(rule, message)


def _not_bool(value: Any) -> Any:
    """JSON true/false is not a number here (pydantic would read true as 1)."""
    if isinstance(value, bool):
        raise _rule("number_type", "must be a number, not true/false")
    return value


Number = Annotated[float, BeforeValidator(_not_bool)]
Integer = Annotated[int, BeforeValidator(_not_bool)]


def _check_env_keys(env: dict[str, Any], field: str) -> None:
    for key in env:
        if not limits.ENV_KEY_RE.fullmatch(key):
            raise _rule("env_key", f"{field} key {key!r} {limits.ENV_KEY_RULE}")
        if key.upper().startswith(limits.ENV_RESERVED_PREFIX):
            raise _rule(
                "env_key_reserved",
                f"{field} key {key!r} uses the prefix FC_, which Function Compute reserves",
            )


def _no_control_chars(value: str, what: str) -> str:
    if "\x00" in value:
        raise _rule("no_nul", f"{what} must not contain NUL characters")
    return value


class DeployRequest(_Strict):
    """A stdio MCP server to run behind the mcp-fc bridge as an FC 3.0 custom-container function."""

    name: Annotated[
        str,
        Field(description=f"FC function name: {limits.FUNCTION_NAME_RULE}", examples=["mcp-time"]),
    ]
    image: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=limits.IMAGE_MAX,
            examples=["registry.cn-hangzhou.aliyuncs.com/ns/mcp-time:1.0"],
            description=(
                "the container image; leave it out for an `npx [-y] PKG` or `uvx PKG` command, which the "
                "worker pins, builds into a code package and runs on FC's custom.debian12 runtime"
            ),
        ),
    ] = None
    command: Annotated[
        list[Annotated[str, Field(max_length=4096)]],
        Field(
            default_factory=list,
            max_length=256,
            description="argv of the stdio MCP server",
            examples=[["mcp-server-time"]],
        ),
    ]
    env: dict[str, Annotated[str, Field(max_length=limits.ENV_TOTAL_BYTES)]] = Field(default_factory=dict)
    secret_env: dict[str, SecretStr] = Field(
        default_factory=dict, description="write-only: stored encrypted, always shown as ***"
    )
    region: str | None = Field(default=None, description="FC region; the service's default when omitted")
    cpu: Number = Field(default=0.5, description="vCPU, a multiple of 0.05 in 0.05-16")
    memory_mb: Integer = Field(default=512, description="a multiple of 64 in 128-32768, 1-4 GB per vCPU")
    disk_mb: Integer = Field(default=512, description="512 or 10240")
    timeout_s: Integer = Field(default=600, description="1-86400; an SSE session lives at most this long")
    instance_concurrency: Integer = Field(default=10, description="requests per instance, 1-200")
    session_concurrency_per_instance: Integer | None = Field(
        default=None,
        description=(
            "SSE sessions per instance (FC's sessionConcurrencyPerInstance), 1-200 and at most "
            "instance_concurrency; default min(20, instance_concurrency // 2), at least 1"
        ),
    )
    transport: Transport = Field(
        default=Transport.streamable_http,
        description=TRANSPORT_DESCRIPTION,
        json_schema_extra={"x-deprecated-values": [Transport.sse.value]},
    )
    auth: AuthSpec = Field(default_factory=AuthSpec)
    allow_origins: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=lambda: ["*"],
        max_length=32,
        description=(
            "browser origins the bridge allows (CORS; any other Origin gets 403). Default: '*' behind the "
            "trigger's auth; with auth anonymous, none but loopback (an open endpoint must not answer any web "
            "page: DNS rebinding)"
        ),
    )
    priority: Priority = Priority.normal
    proxy: ProxyKind = Field(
        default=ProxyKind.mcp_proxy,
        description=(
            "the bridge in front of the stdio server: 'mcp-proxy' (the name kept for it) runs mcp-fc-bridge, "
            "which serves /mcp for MCP 2026-07-28 and the handshake revisions (and /sse with transport sse); "
            "'none' for an image that already serves MCP over HTTP on port 8080"
        ),
    )
    init: Init = Field(
        default=Init.tini,
        description=(
            "the container's entrypoint in front of the bridge: 'tini' runs `tini --` as PID 1 (the image "
            "must have tini on PATH, as the mcp-fc runtime image does); 'none' runs the bridge as PID 1. "
            "Ignored with proxy: none, which keeps the image's own entrypoint"
        ),
    )
    description: str = Field(default="", max_length=limits.DESCRIPTION_MAX)
    acr_instance_id: str | None = None
    vpc: VpcSpec | None = None
    log: LogSpec | None = None
    role: str | None = Field(default=None, max_length=limits.ROLE_MAX)
    inject_credentials: bool = Field(
        default=False,
        description="hand the function role's STS credentials to the MCP server's environment",
    )
    install_scripts: bool = Field(
        default=False,
        description="image-less npm packages: run their install scripts (off: `npm --ignore-scripts`)",
    )
    upgrade: bool = Field(
        default=False,
        description=(
            "image-less: resolve the package's versions again instead of reusing the deployment's lock "
            "(`redeploy --upgrade`); applies to this run only"
        ),
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not limits.FUNCTION_NAME_RE.fullmatch(v):
            raise _rule("function_name", f"function name must be {limits.FUNCTION_NAME_RULE}")
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is not None and not limits.IMAGE_RE.fullmatch(v):
            raise _rule(
                "image_reference", "image must be a registry/repository[:tag][@sha256:digest] reference"
            )
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str]) -> list[str]:
        for arg in v:
            _no_control_chars(arg, "command arguments")
        if v and (not v[0].strip() or v[0].startswith("-")):
            raise _rule(
                "command_program", "the first command element must be the program, not blank or a flag"
            )
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        _check_env_keys(v, "env")
        for value in v.values():
            _no_control_chars(value, "env values")
        return v

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        _check_env_keys(v, "secret_env")
        for value in v.values():
            _no_control_chars(value.get_secret_value(), "secret_env values")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not limits.REGION_RE.fullmatch(v):
            raise _rule("region", "region must look like cn-hangzhou or ap-southeast-1")
        if v not in limits.FC_REGIONS:
            raise _rule(
                "region",
                f"Function Compute has no region {v!r}; use one of {', '.join(sorted(limits.FC_REGIONS))}",
            )
        return v

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        # Each value becomes an argv element after the bridge's --allow-origin: "--foo" would be a flag.
        for origin in v:
            if origin != "*" and not limits.ORIGIN_RE.fullmatch(origin):
                raise _rule(
                    "origin", "each allowed origin must be * or scheme://host[:port] (http or https, no path)"
                )
        return v

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: float) -> float:
        if not (limits.CPU_MIN <= v <= limits.CPU_MAX) or not limits.is_multiple(v, limits.CPU_STEP):
            raise _rule("cpu_range", "cpu must be a multiple of 0.05 between 0.05 and 16")
        return round(v, 2)

    @field_validator("memory_mb")
    @classmethod
    def _memory(cls, v: int) -> int:
        if not (limits.MEMORY_MIN_MB <= v <= limits.MEMORY_MAX_MB) or v % limits.MEMORY_STEP_MB:
            raise _rule("memory_range", "memory_mb must be a multiple of 64 between 128 and 32768")
        return v

    @field_validator("disk_mb")
    @classmethod
    def _disk(cls, v: int) -> int:
        if v not in limits.DISK_SIZES_MB:
            raise _rule("disk_size", "disk_mb must be 512 or 10240")
        return v

    @field_validator("timeout_s")
    @classmethod
    def _timeout(cls, v: int) -> int:
        if not (limits.TIMEOUT_MIN_S <= v <= limits.TIMEOUT_MAX_S):
            raise _rule("timeout_range", "timeout_s must be between 1 and 86400")
        return v

    @field_validator("instance_concurrency")
    @classmethod
    def _concurrency(cls, v: int) -> int:
        if not (limits.CONCURRENCY_MIN <= v <= limits.CONCURRENCY_MAX):
            raise _rule("concurrency_range", "instance_concurrency must be between 1 and 200")
        return v

    @field_validator("session_concurrency_per_instance")
    @classmethod
    def _sessions(cls, v: int | None) -> int | None:
        if v is not None and not (limits.SESSIONS_MIN <= v <= limits.SESSIONS_MAX):
            raise _rule(
                "session_concurrency_range", "session_concurrency_per_instance must be between 1 and 200"
            )
        return v

    @field_validator("acr_instance_id")
    @classmethod
    def _acr(cls, v: str | None) -> str | None:
        if v is not None and not limits.ACR_INSTANCE_ID_RE.fullmatch(v):
            raise _rule("acr_instance_id", "acr_instance_id must look like cri-xxxxxxxx")
        return v

    @field_validator("role")
    @classmethod
    def _role(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("acs:ram::"):
            raise _rule("role_arn", "role must be a RAM role ARN: acs:ram::<account>:role/<name>")
        return v

    @field_validator("description")
    @classmethod
    def _description(cls, v: str) -> str:
        return _no_control_chars(v, "description")

    @model_validator(mode="wrap")
    @classmethod
    def _cross_field(cls, data: Any, handler: Any) -> "DeployRequest":
        # Rules that span fields. Raised as located errors so a 422 names the field and the rule.
        req = handler(data)
        if "allow_origins" not in req.model_fields_set and req.auth.type == AuthType.anonymous:
            # Unauthenticated, '*' would let any web page's script call the server (issue 24); explicit wins.
            req.allow_origins = []
            req.model_fields_set.discard("allow_origins")  # still a default: clients send only what was asked
        problems = [
            InitErrorDetails(type=PydanticCustomError(rule, message), loc=(field,), input=value)
            for field, rule, message, value in [*req._capacity_problems(), *req._source_problems()]
        ]
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return req

    def _capacity_problems(self) -> list[_Broken]:
        """What one instance is given: memory per vCPU, the environment's size, SSE sessions."""
        found: list[_Broken] = []
        memory_gb = self.memory_mb / 1024
        if not (self.cpu - 1e-9 <= memory_gb <= 4 * self.cpu + 1e-9):
            message = (
                f"{self.memory_mb} MB is outside 1-4 GB per vCPU for cpu {self.cpu} "
                f"(allowed {int(self.cpu * 1024)}-{int(self.cpu * 4096)} MB)"
            )
            found.append(("memory_mb", "cpu_memory_ratio", message, self.memory_mb))
        total = limits.env_size({**self.env, **self.secret_values()})
        if total > limits.ENV_TOTAL_BYTES:
            message = f"env and secret_env together are {total} bytes as the JSON FC receives; FC allows 4096"
            found.append(("env", "env_total_size", message, total))
        sessions = self.session_concurrency_per_instance
        if sessions is not None and sessions > self.instance_concurrency:
            message = (
                f"{sessions} sessions per instance exceed instance_concurrency {self.instance_concurrency}; "
                "FC refuses more sessions than concurrent requests per instance"
            )
            found.append(
                (
                    "session_concurrency_per_instance",
                    "session_concurrency_exceeds_instance",
                    message,
                    sessions,
                )
            )
        if sessions is not None and self.transport != Transport.sse:
            message = (
                "session_concurrency_per_instance applies only to transport sse (MCP_SSE session affinity)"
            )
            found.append(
                ("session_concurrency_per_instance", "session_concurrency_needs_sse", message, sessions)
            )
        return found

    def _source_problems(self) -> list[_Broken]:
        """What the server is made of: its environment's keys, its image, its command."""
        found: list[_Broken] = []
        overlap = sorted(set(self.env) & set(self.secret_env))
        if overlap:
            found.append(
                ("secret_env", "env_duplicate_key", f"keys {overlap} are in both env and secret_env", overlap)
            )
        if self.image is None:
            return [*found, *self._package_problems()]
        if self.region and (wrong_region := limits.image_region_error(self.image, self.region)):
            found.append(("image", "image_region", wrong_region, self.image))
        host = limits.image_registry_host(self.image)
        if host and limits.ACR_EE_HOST_RE.fullmatch(host) and not self.acr_instance_id:
            message = "images in an ACR Enterprise Edition registry need acr_instance_id (cri-...)"
            found.append(("acr_instance_id", "acr_instance_required", message, None))
        if self.proxy == ProxyKind.mcp_proxy and not self.command:
            message = "give the stdio MCP server's argv when proxy is mcp-proxy"
            found.append(("command", "command_required", message, []))
        return found

    def _package_problems(self) -> list[_Broken]:
        """An image-less request: its command must be a package command the worker can build."""
        if parse_package_command(self.command) is None:
            message = f"give an image, or a server command mcp-fc can package without one: {PACKAGE_COMMANDS}"
            return [("image", "image_required", message, None)]
        if self.proxy == ProxyKind.none:
            message = "an image-less deployment runs the mcp-fc bridge: proxy none needs an image"
            return [("proxy", "proxy_needs_image", message, self.proxy.value)]
        if self.acr_instance_id:
            return [("acr_instance_id", "acr_without_image", "acr_instance_id needs an image", None)]
        return []

    @property
    def package(self) -> PackageCommand | None:
        """The package an image-less deployment builds (None with an image)."""
        return None if self.image is not None else parse_package_command(self.command)

    def sessions_per_instance(self) -> int:
        """The SSE sessions an instance takes: the request's, else FC's default of 20 capped at half the
        instance concurrency (each session's stream holds one request slot; its POSTs need others)."""
        if self.session_concurrency_per_instance is not None:
            return self.session_concurrency_per_instance
        return min(limits.SESSIONS_DEFAULT, max(1, self.instance_concurrency // 2))

    def secret_values(self) -> dict[str, str]:
        """The plaintext secret env. Only the spec builder and the encrypted store may call this."""
        return {k: v.get_secret_value() for k, v in self.secret_env.items()}

    @field_serializer("secret_env")
    def _mask_secrets(self, v: dict[str, SecretStr]) -> dict[str, str]:
        return {k: MASK for k in v}


class RedeployRequest(_Strict):
    """Fields to change on an existing deployment; everything omitted stays as it was."""

    image: str | None = None
    command: list[str] | None = None
    env: dict[str, str] | None = None
    secret_env: dict[str, SecretStr] | None = None
    cpu: Number | None = None
    memory_mb: Integer | None = None
    disk_mb: Integer | None = None
    timeout_s: Integer | None = None
    instance_concurrency: Integer | None = None
    session_concurrency_per_instance: Integer | None = None
    allow_origins: list[str] | None = None
    description: str | None = None
    priority: Priority | None = None
    install_scripts: bool | None = None
    upgrade: bool = Field(
        default=False,
        description="image-less: resolve the package's versions again instead of reusing the deployment's lock",
    )
    transport: Transport | None = Field(
        default=None,
        description=(
            "change the transport (omitted: the deployment keeps its own). `streamable-http` converts an "
            "SSE deployment: the client URL becomes `/mcp`; `sse` is deprecated (MCP 2026-07-28)"
        ),
        json_schema_extra={"x-deprecated-values": [Transport.sse.value]},
    )

    @field_serializer("secret_env")
    def _mask_secrets(self, v: dict[str, SecretStr] | None) -> dict[str, str] | None:
        return None if v is None else {k: MASK for k in v}

    def apply_to(self, current: DeployRequest) -> DeployRequest:
        """The merged request, validated again as a whole (so ratios and env size still hold)."""
        changes = {k: getattr(self, k) for k in self.model_fields_set if getattr(self, k) is not None}
        data = current.model_dump(mode="python", exclude={"secret_env"})
        secrets = current.secret_values()
        if "secret_env" in changes:
            secrets = {k: v.get_secret_value() for k, v in changes.pop("secret_env").items()}
        if changes.get("transport", current.transport) != Transport.sse and (
            "session_concurrency_per_instance" not in changes
        ):
            # SSE session affinity has no meaning on streamable HTTP: a conversion drops its setting.
            data["session_concurrency_per_instance"] = None
        data.update(changes)
        data["upgrade"] = self.upgrade  # this run only: a later redeploy keeps the lock again
        data["secret_env"] = secrets
        return DeployRequest.model_validate(data)
