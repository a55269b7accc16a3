"""`mcp-fc logs`: the server's own output from GET /v1/deployments/{id}/logs (the API is mocked)."""

from __future__ import annotations

import json

import httpx

from deployer.cli import logs as cli_logs


def page(lines, cursor=None):
    return {
        "deployment_id": "d1",
        "name": "mcp-time",
        "source": {"project": "fc-emulator", "logstore": "function-logs", "emulator": True},
        "lines": lines,
        "cursor": cursor,
    }


def line(message, stream="stderr", at="2026-12-03T06:00:00.000Z", ns=1):
    return {
        "time": at,
        "time_ns": ns,
        "instance_id": "c-1",
        "qualifier": "LATEST",
        "stream": stream,
        "message": message,
    }


def test_logs_prints_time_instance_stream_and_message(api, cli):
    route = api.get("/v1/deployments/mcp-time/logs").mock(
        return_value=httpx.Response(200, json=page([line("server started")], "1:1"))
    )
    result = cli("logs", "mcp-time", "--tail", "5", "--since", "10m")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["2026-12-03T06:00:00.000Z c-1 stderr server started"]
    sent = route.calls.last.request.url.params
    assert sent["tail"] == "5" and sent["since"] == "10m"


def test_logs_json_is_one_object_per_line(api, cli):
    api.get("/v1/deployments/mcp-time/logs").mock(
        return_value=httpx.Response(200, json=page([line("a"), line("b", "stdout", ns=2)]))
    )
    result = cli("logs", "mcp-time", "--json")
    assert [json.loads(x)["message"] for x in result.stdout.splitlines()] == ["a", "b"]


def test_follow_asks_again_with_the_cursor_and_prints_each_line_once(api, cli, monkeypatch):
    answers = [
        httpx.Response(200, json=page([line("first")], "1:1")),
        httpx.Response(200, json=page([line("second", ns=2)], "2:1")),
        httpx.Response(200, json=page([], "2:1")),
    ]
    calls = []

    def respond(request):
        calls.append(dict(request.url.params))
        if len(calls) > len(answers):
            raise KeyboardInterrupt  # what Ctrl-C does to a follow
        return answers[len(calls) - 1]

    api.get("/v1/deployments/mcp-time/logs").mock(side_effect=respond)
    monkeypatch.setattr(cli_logs, "FOLLOW_POLL_S", 0.0)
    result = cli("logs", "mcp-time", "--follow")
    assert result.exit_code == 130
    assert [x.split(" ", 3)[3] for x in result.stdout.splitlines()] == ["first", "second"]
    assert "after" not in calls[0] and calls[1]["after"] == "1:1" and calls[2]["after"] == "2:1"


def test_logs_of_a_deployment_without_log_config_is_a_clear_error(api, cli):
    api.get("/v1/deployments/mcp-time/logs").mock(
        return_value=httpx.Response(
            409, json={"title": "Conflict", "detail": "this deployment ships no logs: redeploy with log"}
        )
    )
    result = cli("logs", "mcp-time")
    assert result.exit_code == 2 and "ships no logs" in result.stderr


def test_logs_is_no_longer_an_alias_of_events(cli):
    assert "events" not in cli("logs", "--help").stdout.split("Usage")[0]
    assert "own output" in cli("logs", "--help").stdout
