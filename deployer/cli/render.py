"""How the CLI shows deployments: detail views, the list table, the wait display and one-line errors.

Standard output carries results (URLs, tables, JSON); progress and errors go to standard error, so
`mcp-fc deploy ... --json | jq` and `mcp-fc config a b > mcp.json` stay clean. Nothing here can print a
secret value: deployments from the API carry `***`, and user input is never echoed.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from deployer.client import Replaced
from schemas import Deployment, HealthStatus, Status, ToolDrift

STATUS_STYLE = {
    Status.pending: "yellow",
    Status.running: "cyan",
    Status.succeeded: "green",
    Status.failed: "red",
    Status.cancelled: "magenta",
    Status.deleting: "yellow",
    Status.deleted: "dim",
}


def make_consoles() -> tuple[Console, Console]:
    """(stdout, stderr). Soft-wrapped so long URLs stay on one copy-pasteable line."""
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    return out, err


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def deployment_json(dep: Deployment) -> str:
    return dep.model_dump_json(indent=2)


def status_text(status: Status) -> Text:
    return Text(status.value, style=STATUS_STYLE.get(status, ""))


def endpoint_url(dep: Deployment) -> str | None:
    """The URL an MCP client connects to for this deployment's transport."""
    if dep.spec.transport.value == "streamable-http":
        return dep.urls.mcp or dep.urls.sse or dep.urls.internet
    return dep.urls.sse or dep.urls.mcp or dep.urls.internet


def error_line(dep: Deployment, *, keep_lines: bool = False) -> str:
    """One line saying why a deployment did not succeed (``keep_lines``: the message's own lines kept, as a
    failed server's last stderr lines are)."""
    err = dep.error
    verb = {Status.cancelled: "was cancelled", Status.deleted: "was deleted"}.get(dep.status, "failed")
    if err is None:
        stage = f" at stage {dep.stage}" if dep.stage else ""
        return f"deployment {dep.name} {verb}{stage} (status {dep.status.value})"
    step = f" at step {err.step}" if err.step else (f" at stage {dep.stage}" if dep.stage else "")
    rid = f" [request {err.request_id}]" if err.request_id else ""
    retry = " (retryable: run `mcp-fc redeploy " + dep.name + "`)" if err.retryable else ""
    if keep_lines:
        message = "\n".join(line.rstrip() for line in err.message.splitlines() if line.strip())
    else:
        message = " ".join(err.message.split())
    return f"deployment {dep.name} {verb}{step}: {err.code}: {message}{rid}{retry}"


def say_replaced(dep: Deployment, replaced: Replaced | None) -> None:
    """One stderr line when a deploy replaces the deployment its name had (same id and URL)."""
    if replaced is None:
        return
    if replaced.unchanged:
        print(f"note: {replaced.unchanged}", file=sys.stderr, flush=True)
        return
    what = f"changes {', '.join(replaced.changed)}" if replaced.changed else "the same spec, deployed again"
    print(
        f"note: {dep.name} already had a deployment ({replaced.status}, id {dep.id}): this deploy replaces "
        f"it in place, same URL; {what}",
        file=sys.stderr,
        flush=True,
    )


def _ago(when: datetime) -> str:
    now = datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = int((now - when).total_seconds())
    if seconds < 0:
        return when.strftime("%Y-%m-%d %H:%M")
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _kv(console: Console, key: str, value: str | Text, width: int = 10) -> None:
    line = Text(f"  {key:<{width}}", style="bold")
    line.append(value if isinstance(value, Text) else Text(value))
    console.print(line)


def print_urls(console: Console, dep: Deployment) -> None:
    for label, url in (("SSE", dep.urls.sse), ("MCP", dep.urls.mcp)):
        if url:
            _kv(console, label, url)
    if not (dep.urls.sse or dep.urls.mcp) and dep.urls.internet:
        _kv(console, "URL", dep.urls.internet)


def print_success(
    console: Console, dep: Deployment, *, verb: str = "deployed", elapsed: float | None = None
) -> None:
    took = f" in {elapsed:.0f}s" if elapsed is not None else ""
    head = Text("✓ ", style="green bold")
    if verb.endswith(" of"):  # "rotated the token of NAME", not "NAME rotated the token of"
        head.append(f"{verb} ")
        head.append(dep.name, style="bold")
        head.append(f"{took} (id {dep.id}, {dep.region})")
    else:
        head.append(dep.name, style="bold")
        head.append(f" {verb}{took} (id {dep.id}, {dep.region})")
    console.print(head)
    print_urls(console, dep)
    _kv(console, "tools", ", ".join(dep.tools) if dep.tools else "(none reported)")
    if dep.protocols:
        _kv(console, "protocols", ", ".join(dep.protocols))
    if dep.tool_changes is not None:
        _kv(console, "changed", tool_drift_text(dep.tool_changes, "tool drift: this release's tools differ"))
    hint = Text("\nAdd it to Claude Code or Cursor:  ", style="dim")
    hint.append(f"mcp-fc config {dep.name}", style="bold")
    hint.append(
        "  (VS Code, Claude Desktop, the MCP Inspector: add --client vscode|claude-desktop|inspector)",
        style="dim",
    )
    console.print(hint)


def print_deployment(console: Console, dep: Deployment) -> None:
    """The `status` view."""
    head = Text(dep.name, style="bold")
    head.append("  ")
    head.append(status_text(dep.status))
    head.append(f"  (id {dep.id})", style="dim")
    console.print(head)
    stage = f"{dep.stage or '-'} ({dep.progress}%)"
    _kv(console, "stage", stage)
    _kv(console, "region", dep.region)
    print_live(console, dep)
    _kv(console, "image", dep.spec.image)
    if dep.spec.command:
        _kv(console, "command", " ".join(dep.spec.command))
    _kv(console, "transport", f"{dep.spec.transport.value}, auth {dep.spec.auth.type.value}")
    _kv(console, "size", f"{dep.spec.cpu:g} vCPU, {dep.spec.memory_mb} MB, timeout {dep.spec.timeout_s}s")
    if dep.spec.env:
        _kv(console, "env", ", ".join(sorted(dep.spec.env)))
    if dep.spec.secret_env:
        _kv(console, "secrets", ", ".join(f"{k}=***" for k in sorted(dep.spec.secret_env)))
    print_urls(console, dep)
    if dep.tools:
        _kv(console, "tools", ", ".join(dep.tools))
    if dep.protocols:
        _kv(console, "protocols", ", ".join(dep.protocols))
    if dep.tool_fingerprint:
        _kv(
            console,
            "fingerprint",
            f"sha256:{dep.tool_fingerprint[:16]} ({plural(len(dep.tool_fingerprints), 'tool')})",
        )
    if dep.status == Status.succeeded or dep.live is not None:
        _kv(console, "health", health_text(dep, detail=True))
    for key, found, what in (
        ("tool drift", dep.tool_drift, "the server now lists other tools than at deploy"),
        ("tools", dep.tool_changes, "this release changed tools"),
    ):
        if found is not None:
            _kv(console, key, tool_drift_text(found, what))
    if dep.error:
        _kv(console, "error", Text(error_line(dep, keep_lines=True), style="red"))
    print_ops(console, dep)
    _kv(console, "attempts", str(dep.attempts))
    _kv(console, "created", dep.created_at.isoformat(timespec="seconds"))
    _kv(console, "updated", f"{dep.updated_at.isoformat(timespec='seconds')} ({_ago(dep.updated_at)})")


def plural(count: int, noun: str) -> str:
    """`1 tool`, `2 tools`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def print_live(console: Console, dep: Deployment) -> None:
    """What the endpoint serves, when it is not the spec the lines below show (after a rollback, or a
    failed or cancelled redeploy: issue 26 #4), each labelled; one `live` line when it is the spec."""
    live = dep.live
    if live is None:
        return
    release = f" (release {live.release})" if live.release else ""
    if not live.differs_from_spec:
        _kv(console, "live", f"version {live.version}{release}: serves the spec below")
        return
    _kv(console, "live", Text(f"version {live.version}{release} serves another spec:", style="yellow"))
    _kv(console, "", f"  image     {live.image or '-'}")
    _kv(console, "", f"  command   {' '.join(live.command) or '-'}")
    if live.env_keys:
        _kv(console, "", f"  env keys  {', '.join(live.env_keys)}")
    differs = ", ".join(live.differs_from_spec)
    how = f"`mcp-fc redeploy {dep.name}` releases it" if dep.status == Status.succeeded else "see error"
    _kv(console, "spec", Text(f"not live (differs in {differs}; {how}):", style="yellow"))


HEALTH_STYLE = {
    HealthStatus.healthy: "green",
    HealthStatus.unhealthy: "red bold",
    HealthStatus.unknown: "dim",
}


def health_text(dep: Deployment, *, detail: bool = False) -> Text:
    """`healthy`, `unhealthy` or `unknown`; with detail: latency, when, failures and the last error."""
    h = dep.health
    text = Text(h.status.value, style=HEALTH_STYLE.get(h.status, ""))
    if not detail:
        return text
    parts = []
    if h.latency_ms is not None and h.status == HealthStatus.healthy:
        parts.append(f"{h.latency_ms} ms")
    if h.consecutive_failures:
        parts.append(
            f"{h.consecutive_failures} failed probe{'s' if h.consecutive_failures > 1 else ''} in a row"
        )
    if h.checked_at is not None:
        parts.append(f"checked {_ago(h.checked_at)}")
    elif dep.status == Status.succeeded:
        parts.append("not checked yet")
    if parts:
        text.append(f" ({', '.join(parts)})")
    if h.last_error and h.status == HealthStatus.unhealthy:
        text.append("\n" + " ".join(h.last_error.split()), style="red")
    return text


def tool_drift_text(drift: ToolDrift, what: str) -> Text:
    """`what`, against what and since when, then one `+ / - / ~` line per tool change."""
    from deployer.ops.tool_drift import diff_lines

    # "against version 1; seen 3m ago": the time is when the difference was found, not the version's age.
    text = Text(f"{what} (against {drift.against}; seen {_ago(drift.detected_at)})", style="yellow")
    diff = drift.model_dump(mode="json", exclude_none=True)
    for line in diff_lines(diff):
        text.append("\n" + line)
    return text


def print_ops(console: Console, dep: Deployment) -> None:
    """What the scheduled checks saw: config drift (field by field) and the endpoint token's expiry."""
    if dep.drift is not None:
        if not dep.drift.drifted:
            _kv(console, "drift", f"none (checked {_ago(dep.drift.checked_at)})")
        else:
            _kv(
                console,
                "drift",
                Text(
                    f"{len(dep.drift.fields)} field(s) differ from the spec (checked {_ago(dep.drift.checked_at)});"
                    f" `mcp-fc {'reconcile' if dep.status == Status.succeeded else 'redeploy'} {dep.name}`"
                    " converges them",
                    style="yellow",
                ),
            )
            for f in dep.drift.fields:
                _kv(console, "", f"{f.field}: FC has {_json(f.fc)}, the spec wants {_json(f.spec)}")
    if dep.token is not None:
        when = dep.token.expires_at.isoformat(timespec="seconds")
        if dep.token.expiring:
            _kv(
                console,
                "token",
                Text(
                    f"expires {when} ({_until(dep.token.expires_at)}): rotate it with "
                    f"`mcp-fc token rotate {dep.name}`",
                    style="yellow",
                ),
            )
        else:
            _kv(console, "token", f"expires {when}")


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _until(when: datetime) -> str:
    left = (when - datetime.now(UTC)).total_seconds()
    if left <= 0:
        return "expired"
    days = left / 86400
    return f"in {days:.0f} days" if days >= 1 else f"in {left / 3600:.0f} hours"


def deployments_table(items: list[Deployment]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("NAME", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("STAGE")
    table.add_column("PROGRESS", justify="right", no_wrap=True)
    table.add_column("HEALTH", no_wrap=True)
    table.add_column("URL", overflow="fold")
    table.add_column("UPDATED", no_wrap=True)
    for dep in items:
        table.add_row(
            Text(dep.name),
            status_text(dep.status),
            Text(dep.stage or "-"),
            f"{dep.progress}%",
            health_text(dep) if dep.status == Status.succeeded else Text("-"),
            Text(endpoint_url(dep) or "-"),
            _ago(dep.updated_at),
        )
    return table


class WaitDisplay:
    """Shows a deployment while the CLI waits for it.

    On a terminal: a live line with the stage, a progress bar and the elapsed time. Elsewhere (CI logs,
    pipes): one plain line per change of status or stage. `quiet` shows nothing (used with --json when
    standard error is not a terminal).
    """

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self._progress: Progress | None = None
        self._task: Any = None
        self._last: tuple[Any, ...] | None = None

    def __enter__(self) -> WaitDisplay:
        if self.live:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("waiting", total=100)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, dep: Deployment) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            style = STATUS_STYLE.get(dep.status, "")
            description = f"{dep.name} [{style}]{dep.status.value}[/] {Text(dep.stage or '').markup}"
            self._progress.update(self._task, completed=dep.progress, description=description)
            return
        key = (dep.status, dep.stage)
        if key != self._last:
            self._last = key
            line = Text(f"  {dep.status.value:<10}", style=STATUS_STYLE.get(dep.status, ""))
            line.append(f"{(dep.stage or '-'):<24} {dep.progress:>3}%")
            self.console.print(line)
