"""Error text that keeps what matters: FC's error answers decoded, the end of long messages kept.

A failed server's cause is at the END of what comes back (its last stderr lines follow a bridge's
traceback), so long messages lose their middle, never their end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

#: The longest error message stored on a deployment.
MAX_ERROR_CHARS = 4000
#: How much of a long message's beginning is kept (what failed and the command); the rest is its end.
HEAD_CHARS = 600
MASK = "***"


def fc_error_text(body: str) -> str:
    """``Code: Message`` for an FC error answer (``{"Code", "Message", "RequestId"}``), else the body."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()
    if isinstance(data, dict) and isinstance(data.get("Message"), str):
        code = data.get("Code") or data.get("ErrorCode")
        return f"{code}: {data['Message']}" if code else data["Message"]
    return body.strip()


def keep_end(text: str, limit: int = MAX_ERROR_CHARS, head: int = HEAD_CHARS) -> str:
    """``text`` cut to about ``limit`` characters by dropping its middle."""
    if len(text) <= limit:
        return text
    tail = max(0, limit - head)
    left_out = len(text) - head - tail
    return f"{text[:head]}\n[... {left_out} characters left out ...]\n{text[len(text) - tail :]}"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value (a server may print its environment) replaced by ***."""
    for value in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


#: A deploy's error as `status` prints it stays under 800 characters (issue 26 #9): the cause in one line,
#: then the server's own last lines, once.
SHORT_ERROR_CHARS = 720
CAUSE_CHARS = 360
LAST_LINES = 5
LINE_CHARS = 120
OUTPUT_MARK = "last output:\n"
SERVER_LINES_MARK = "the MCP server's last stderr lines:\n"
NO_ERA_MARK = "the endpoint serves neither MCP era: "


def short_failure(message: str, limit: int = SHORT_ERROR_CHARS) -> str:
    """A failed start's message, which says each thing once per era and per cold start (~2,300 characters):
    the cause first, in one line (the step's own words, then what the instance did, without the command the
    spec already shows), then the last lines the server itself wrote, each once. Messages without an
    instance's output are only cut to ``limit``, keeping their end."""
    if OUTPUT_MARK not in message:
        return keep_end(message, limit, head=limit // 3)
    head = message.split(OUTPUT_MARK, 1)[0]
    output = message.rsplit(OUTPUT_MARK, 1)[1]
    cause = _cause(head, output)
    lines = _own_lines(output)
    text = cause if not lines else cause + "\nthe server's last lines:\n" + "\n".join(f"  {x}" for x in lines)
    return keep_end(text, limit, head=limit // 2)


def _cause(head: str, output: str) -> str:
    head = head.split("; command: ", 1)[0].strip().rstrip(";")
    if NO_ERA_MARK in head:  # the probe's words, then the first era's answer (the eras' answers repeat it)
        before, answer = head.split(NO_ERA_MARK, 1)
        step = before.split(": MCP ", 1)[0] if ": MCP " in before else before.rstrip(": ")
        answer = answer.removeprefix("legacy: ")
        head = f"{step}: {answer}" if step else answer
    exit_line = next((x for x in output.splitlines() if x.startswith("the MCP server (")), None)
    if exit_line and "exited" in exit_line and "its MCP server" not in head:
        head += f" ({exit_line.split(') ', 1)[-1]})"
    head = " ".join(head.split())
    return head if len(head) <= CAUSE_CHARS else head[: CAUSE_CHARS - 1] + "…"


def _own_lines(output: str) -> list[str]:
    """The server's own stderr lines when the bridge reported them, else the instance's last lines; without
    repeats (kept at their last place), at most LAST_LINES, each cut to LINE_CHARS."""
    if SERVER_LINES_MARK in output:
        output = output.rsplit(SERVER_LINES_MARK, 1)[1]
    lines = [x.strip() for x in output.splitlines() if x.strip()]
    lines = [x for x in lines if not x.startswith("the MCP server (")]
    unique = list(reversed(dict.fromkeys(reversed(lines))))
    return [x if len(x) <= LINE_CHARS else x[: LINE_CHARS - 1] + "…" for x in unique[-LAST_LINES:]]
