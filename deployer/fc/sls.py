"""A deployment's own output (its MCP server's stdout and stderr), read from Simple Log Service.

On FC a function with ``logConfig`` (the DeployRequest's ``log: {project, logstore}``) ships its output to
SLS; this reads it back with the official SDK (``alibabacloud-sls20201230``, ``GetLogs``), with the same
credential chain as the FC gateway. Locally the FC emulator answers the same ``GetLogs`` from the output it
keeps (fc_emulator/sls.py), so both paths are one code path: "SLS at the emulator's endpoint".

Where SLS is (:func:`sls_endpoint`): ``MCPFC_SLS_ENDPOINT`` when set, else the FC endpoint when
``MCPFC_FC_ENDPOINT`` names a local one (plain HTTP or a loopback address: the emulator serves both), else
``{region}.log.aliyuncs.com``. An endpoint
that is an IP address or ``localhost`` cannot take the project as a subdomain (the SDK sends to
``{project}.{endpoint}``), so requests then go through it as an HTTP proxy, which the emulator accepts.

Lines come back oldest first with a cursor (``<time_ns>:<count of lines at that time>``) that the next
call passes as ``after`` to get only newer lines, which is how ``mcp-fc logs --follow`` polls. Secret env
values are scrubbed from every line (a server may print its environment).
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from deployer.errors import LogsUnavailable
from deployer.failure_text import scrub
from deployer.settings import Settings

#: Where the emulator keeps every function's output (fc_emulator/logstore.py).
EMULATOR_PROJECT = "fc-emulator"
EMULATOR_LOGSTORE = "function-logs"
#: SLS's largest GetLogs page, and how many pages one call reads at most.
PAGE = 100
MAX_PAGES = 20
DEFAULT_SINCE_S = 24 * 3600


@dataclass(frozen=True)
class LogLine:
    time: str
    time_ns: int
    instance_id: str
    qualifier: str
    stream: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Source:
    project: str
    logstore: str
    endpoint: str
    protocol: str
    proxy: str | None
    emulator: bool


def _split(endpoint: str, default_protocol: str) -> tuple[str, str]:
    protocol = default_protocol
    if "://" in endpoint:
        scheme, endpoint = endpoint.split("://", 1)
        protocol = "http" if scheme == "http" else "https"
    return endpoint.rstrip("/"), protocol


def sls_endpoint(settings: Settings, region: str) -> tuple[str, str, bool]:
    """``(host[:port], protocol, whether it is the FC endpoint)``. The FC endpoint stands in for SLS only
    when it is a local one (plain HTTP, or an IP address / localhost): the emulator; a real FC endpoint
    never answers SLS."""
    if settings.sls_endpoint:
        endpoint, protocol = _split(settings.sls_endpoint.replace("{region}", region), "https")
        return endpoint, protocol, False
    if settings.fc_endpoint:
        endpoint, protocol = _split(settings.fc_endpoint.replace("{region}", region), settings.fc_protocol)
        if protocol == "http" or _needs_proxy(endpoint):
            return endpoint, protocol, True
    return f"{region}.log.aliyuncs.com", "https", False


def _needs_proxy(endpoint: str) -> bool:
    host = endpoint.rsplit(":", 1)[0].strip("[]") if endpoint.count(":") <= 1 else endpoint.strip("[]")
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def source_for(settings: Settings, spec: dict[str, Any], region: str) -> Source:
    """Where a deployment's output is: its ``log`` config, else (on the emulator only) the emulator's
    store of every function's output. Raises :class:`LogsUnavailable` when there is none."""
    endpoint, protocol, is_fc_endpoint = sls_endpoint(settings, region)
    proxy = f"{protocol}://{endpoint}" if _needs_proxy(endpoint) else None
    emulator = is_fc_endpoint and protocol == "http"
    log = spec.get("log") or {}
    if log.get("project") and log.get("logstore"):
        return Source(str(log["project"]), str(log["logstore"]), endpoint, protocol, proxy, emulator)
    if emulator:
        return Source(EMULATOR_PROJECT, EMULATOR_LOGSTORE, endpoint, protocol, proxy, True)
    raise LogsUnavailable(
        "this deployment ships no logs: FC keeps a function's output only in Simple Log Service; redeploy "
        "with `log: {project, logstore}` (deploy --file) to keep the server's output",
        status=409,
    )


def make_client(settings: Settings, source: Source, region: str) -> Any:
    """The SLS SDK client. For the emulator only the access key pair of the environment is used: the
    rest of the credential chain (profiles, the ECS metadata service) means nothing there, and asking a
    metadata address from a laptop or a test is a stray network call."""
    import os

    if source.emulator and not (
        os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID") and os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    ):
        raise LogsUnavailable(
            "reading the emulator's logs needs ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET (the emulator's key "
            "pair) in the API's environment",
            status=503,
        )
    from alibabacloud_sls20201230.client import Client
    from alibabacloud_tea_openapi import models as open_api

    from deployer.fc.gateway import credential_client

    config = open_api.Config(
        credential=credential_client(),
        region_id=region,
        endpoint=source.endpoint,
        protocol=source.protocol,
        connect_timeout=int(settings.fc_connect_timeout_s * 1000),
        read_timeout=int(settings.fc_read_timeout_s * 1000),
    )
    if source.proxy:
        config.http_proxy = source.proxy
        config.https_proxy = source.proxy
    return Client(config)


def parse_cursor(cursor: str | None) -> tuple[int, int] | None:
    if not cursor:
        return None
    try:
        at, _, count = cursor.partition(":")
        return int(at), int(count or 0)
    except ValueError:
        raise LogsUnavailable(f"invalid cursor {cursor!r}", status=400) from None


def _line(log: dict[str, Any], secrets: Iterable[str]) -> LogLine:
    seconds = int(log.get("__time__") or 0)
    ns = seconds * 1_000_000_000 + int(log.get("__time_ns_part__") or 0)
    when = datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return LogLine(
        time=when,
        time_ns=ns,
        instance_id=str(log.get("instanceId") or log.get("instanceID") or ""),
        qualifier=str(log.get("qualifier") or ""),
        stream=str(log.get("stream") or ""),
        message=scrub(str(log.get("message") or ""), secrets),
    )


def _get_logs(client: Any, source: Source, body: dict[str, Any]) -> list[dict[str, Any]]:
    from alibabacloud_sls20201230 import models as sls

    request = sls.GetLogsRequest(**body)
    try:
        response = client.get_logs(source.project, source.logstore, request)
    except Exception as exc:  # noqa: BLE001 - every SDK failure is one typed error
        code = getattr(exc, "code", None) or type(exc).__name__
        message = getattr(exc, "message", None) or str(exc)
        raise LogsUnavailable(f"Simple Log Service GetLogs failed: {code}: {message}"[:500]) from None
    return list((response.body.data if response.body else None) or [])


#: How the lines of the parts in front of the server begin: the bridge's own log (its logging format) and
#: the emulator's watcher; its HTTP server's are uvicorn's "LEVEL:" column padded with spaces (a server
#: logging with Python's default format writes "INFO:root:...", which stays). Everything else is the server's.
BRIDGE_PREFIXES = ("[mcp-fc-bridge]", "[fc-emulator]")
UVICORN_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL): +\S")


def is_bridge_line(message: str) -> bool:
    return message.startswith(BRIDGE_PREFIXES) or UVICORN_LINE.match(message) is not None


def read_own(
    client: Any, source: Source, function_name: str, *, tail: int | None = None, **kw: Any
) -> tuple[list[LogLine], str | None]:
    """`read`, only the server's own lines: the bridge's may be most of them (69 of 76 were `Terminating
    session`, issue 26 #10). The tail counts the server's lines; the cursor goes past the hidden ones too."""
    lines, cursor = read(client, source, function_name, tail=None if tail is None else PAGE * MAX_PAGES, **kw)
    lines = [line for line in lines if not is_bridge_line(line.message)]
    if tail is not None:
        lines = lines[-tail:] if tail else []
    return lines, cursor


def read(
    client: Any,
    source: Source,
    function_name: str,
    *,
    since_s: float | None = None,
    tail: int | None = None,
    after: str | None = None,
    secrets: Iterable[str] = (),
    now: float | None = None,
) -> tuple[list[LogLine], str | None]:
    """The function's lines, oldest first, and the cursor after the last one.

    ``tail``: only the last N (newest pages first); ``after``: only lines after a cursor (follow);
    ``since_s``: not older than this Unix time (default: the last 24 hours).
    """
    secrets = list(secrets)
    now = time.time() if now is None else now
    cursor = parse_cursor(after)
    start = int(since_s if since_s is not None else now - DEFAULT_SINCE_S)
    if cursor is not None:
        start = max(start, cursor[0] // 1_000_000_000)
    if start > int(now) + 1:
        return [], after  # nothing can be newer than now
    query = f'functionName: "{function_name}"'
    want = min(tail, PAGE * MAX_PAGES) if tail is not None else PAGE * MAX_PAGES
    reverse = tail is not None and cursor is None
    logs: list[dict[str, Any]] = []
    for page in range(MAX_PAGES):
        body = {
            "from_": start,
            "to": int(now) + 1,
            "query": query,
            "line": PAGE,
            "offset": page * PAGE,
            "reverse": reverse,
        }
        got = _get_logs(client, source, body)
        logs.extend(got)
        if len(got) < PAGE or len(logs) >= want + (cursor[1] if cursor else 0):
            break
    lines = sorted((_line(log, secrets) for log in logs), key=lambda line: line.time_ns)
    if since_s is not None:
        lines = [line for line in lines if line.time_ns >= int(since_s * 1e9)]
    if cursor is not None:
        at, seen = cursor
        same = [line for line in lines if line.time_ns == at][seen:]
        lines = same + [line for line in lines if line.time_ns > at]
        lines.sort(key=lambda line: line.time_ns)
    if tail is not None:
        lines = lines[-tail:] if tail else []
    lines = lines[:want] if cursor is not None else lines
    return lines, _next_cursor(lines, after)


def _next_cursor(lines: list[LogLine], previous: str | None) -> str | None:
    if not lines:
        return previous
    last = lines[-1].time_ns
    count = sum(1 for line in lines if line.time_ns == last)
    prev = parse_cursor(previous)
    if prev is not None and prev[0] == last:
        count += prev[1]
    return f"{last}:{count}"
