"""A failed start's message: the cause in its first line, the server's own last lines once (issue 26 #9)."""

from __future__ import annotations

from deployer.failure_text import short_failure

LINE = "fatal: config missing"
TAIL = f"""[bridge] starting the MCP server
Traceback (most recent call last):
  File "bridge.py", line 1, in <module>
RuntimeError: the MCP server closed its stdout
{LINE}
the MCP server (python -c ...) exited with code 3
the MCP server's last stderr lines:
{LINE}"""
BODY = (
    "function 'broken' instance exited with code 1 before listening on port 8080 (its MCP server exited with "
    f"code 3); command: tini -- mcp-fc-bridge --port 8080 --host 0.0.0.0 -- python -c x; last output:\n{TAIL}"
)
# what the verify step stored: both eras, each with the same cold start's answer
MESSAGE = (
    "version 1 failed verification, so traffic did not move (nothing serves yet): MCP streamable-http client "
    "at http://127.0.0.1:1234/mcp: initialize and 2026-07-28 server/discover failed, the endpoint serves "
    f"neither MCP era: legacy: HTTP 502 FunctionNotStarted: {BODY}; 2026-07-28: HTTP 502 "
    f"FunctionNotStarted: {BODY}"
)


def test_the_cause_comes_first_and_the_servers_line_once():
    short = short_failure(MESSAGE)
    first, *rest = short.splitlines()
    assert first.startswith("version 1 failed verification") and "its MCP server exited with code 3" in first
    assert "command:" not in short and "http://127.0.0.1" not in short
    assert short.count(LINE) == 1 and rest[-1].strip() == LINE
    assert len(short) < 800


def test_long_lines_and_many_lines_are_bounded():
    noisy = "x" * 5000 + "\n" + "\n".join(f"line {i} " + "y" * 300 for i in range(200))
    short = short_failure(f"instance did not listen; last output:\n{noisy}")
    assert len(short) < 800 and short.splitlines()[-1].strip().startswith("line 199")


def test_a_message_without_output_is_only_cut():
    assert short_failure("the trigger has no URL") == "the trigger has no URL"
    long = "a" * 300 + "b" * 3000 + "the end"
    cut = short_failure(long)
    assert len(cut) < 800 and cut.endswith("the end") and cut.startswith("a")
