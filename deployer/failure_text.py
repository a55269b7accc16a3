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
