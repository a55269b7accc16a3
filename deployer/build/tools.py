"""Running npm and uv for a build: a minimal environment, a time limit, output line by line to the
deployment's events, credentials masked, and the tool's own words in the error when it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from deployer.errors import BuildError, ConfigError
from deployer.failure_text import scrub

#: Lines of a failed tool's output kept for its error message.
TAIL_LINES = 25
#: What the tool sees of the worker's environment (an allowlist: the worker's own settings, FC keys and the
#: database URL stay out of npm's and uv's reach, as of the package's install scripts when opted in).
PASSED_VARS = ("PATH", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS")
PASSED_PREFIXES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")

Output = Callable[[str], None]


def url_secrets(url: str | None) -> list[str]:
    """The credentials inside a registry URL (`https://user:token@host/`), to mask wherever output goes."""
    if not url:
        return []
    parts = urlsplit(url)
    return [s for s in (parts.password, parts.username) if s]


def find_tool(name: str) -> str:
    """npm from PATH; uv from the worker's own environment (a dependency of mcp-fc) or PATH."""
    if name == "uv":
        beside = Path(sys.executable).parent / "uv"
        if beside.exists():
            return str(beside)
        try:
            from uv import find_uv_bin  # the `uv` distribution's own locator

            return find_uv_bin()
        except (ImportError, FileNotFoundError):
            pass
    found = shutil.which(name)
    if found is None:
        raise ConfigError(
            f"the worker needs `{name}` on PATH for image-less deploys (the worker image has it)"
        )
    return found


def tool_environment(extra: Mapping[str, str], home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in PASSED_VARS or k.startswith(PASSED_PREFIXES)}
    env.setdefault("PATH", os.defpath)
    # npm writes ~/.npmrc lookups and logs under HOME: a directory of the build's own, not the worker's.
    env["HOME"] = str(home)
    env.update(extra)
    return env


def run_tool(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    output: Output,
    secrets: Iterable[str],
    what: str,
    stdin: str | None = None,
) -> str:
    """Run `argv`; each output line (masked) goes to `output`. Returns stdout; raises BuildError with the
    tail of the output when the tool fails or overruns."""
    masked = [s for s in secrets if s]
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    stdout_lines: list[str] = []
    process = subprocess.Popen(  # npm / uv with fixed arguments
        argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )

    def pump(stream: object, keep: list[str] | None) -> None:
        for line in stream:  # type: ignore[attr-defined]
            line = scrub(line.rstrip("\n"), masked)
            if keep is not None:
                keep.append(line)
            else:
                tail.append(line)
                if line.strip():
                    output(line)

    threads = [
        threading.Thread(target=pump, args=(process.stdout, stdout_lines), daemon=True),
        threading.Thread(target=pump, args=(process.stderr, None), daemon=True),
    ]
    for t in threads:
        t.start()
    if stdin is not None:
        assert process.stdin is not None
        process.stdin.write(stdin)
        process.stdin.close()
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()
        code = None
    for t in threads:
        t.join(5)
    if code != 0:
        said = "\n".join([*tail, *stdout_lines[-5:]]).strip()
        why = f"did not finish within {timeout_s:.0f} s" if code is None else f"failed (exit {code})"
        raise BuildError(f"{what} {why}:\n{said}" if said else f"{what} {why}", output=said)
    return "\n".join(stdout_lines)
