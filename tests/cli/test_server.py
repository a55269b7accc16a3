"""The server-side commands (api, worker, beat, dev, emulator) without starting a service: what they hand to
Celery, and what importing the CLI loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deployer.cli import server


class FakeCelery:
    """Celery's command line as `server.run_celery` calls it: records argv, answers an exit code."""

    def __init__(self, code: int) -> None:
        self.code, self.args = code, None

    def main(self, *, args: list[str], standalone_mode: bool) -> int:
        assert standalone_mode is False
        self.args = args
        return self.code


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["worker", "--pool", "threads", "-n", "w1@%h"], ["worker", "--pool=threads"]),
        (["beat", "--loglevel", "DEBUG"], ["beat", "--loglevel=DEBUG"]),
    ],
)
def test_worker_and_beat_name_the_celery_app_and_keep_its_exit_code(cli, monkeypatch, command, expected):
    fake = FakeCelery(code=3)
    monkeypatch.setattr(server, "celery_command", lambda what: fake)
    result = cli(*command)
    assert result.exit_code == 3, "Celery's exit code is the command's"
    assert fake.args[:2] == ["-A", "tasks"], "the app is named by string, never imported"
    assert fake.args[2 : 2 + len(expected)] == expected


def test_a_bad_pool_is_a_usage_error_before_celery_loads(cli, monkeypatch):
    monkeypatch.setattr(server, "celery_command", lambda what: pytest.fail("Celery loaded"))
    result = cli("worker", "--pool", "gevent")
    assert result.exit_code == 2 and "--pool must be prefork, threads or solo" in result.stderr


def test_the_cli_loads_neither_the_worker_nor_the_emulator():
    """`mcp-fc api` runs in the service image, which has no fc_emulator; deployer never imports tasks."""
    code = (
        "import sys; import deployer.cli.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tasks', 'fc_emulator')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_python_dash_m_deployer_cli_runs_the_cli(tmp_path):
    for module in ("deployer.cli", "deployer.cli.main"):
        out = subprocess.run(
            [sys.executable, "-m", module, "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert out.returncode == 0 and out.stdout.startswith("mcp-fc "), out.stderr
