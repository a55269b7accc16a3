"""`mcp-fc dev`: the API, a Celery worker and beat, and the local FC emulator in one command, no external
server.

Everything lives in the data dir: the SQLite store (deployments and Celery results), the file-backed
broker and the emulator's state. The worker is a child process (`celery -A tasks worker`), exactly as
in production; the emulator runs in this process and starts each function's command locally.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from deployer.settings import Settings
from fc_emulator import EmulatorServer
from fc_emulator.runtime import PASSED_PROXY_VARS

# The demo's own name and mark (issue 26 #7): `time`, the README's first example, is the user's, and a rerun of
# the quick start redeployed the demo over it. A deployment of this name without the mark is left alone.
DEMO_NAME = "mcp-fc-demo"
DEMO_DESCRIPTION = "the sample server of `mcp-fc dev --demo`"
#: Image-less (issue 23): the worker pins mcp-server-time, builds it with the bridge into a code package for
#: this machine's platform and Python, and the emulator runs it as FC would run it on custom.debian12.
DEMO_COMMAND = ["uvx", "mcp-server-time", "--local-timezone", "UTC"]


class ClosedPeerWrites(logging.Filter):
    """asyncio's "socket.send() raised exception." warning: a write to a client that already left (an
    events stream or a long-poll cut by Ctrl-C), logged once per write after the fifth. Nothing is lost and
    nothing is to be done; 53 of them filled the dev terminal (issue 26 #13)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("socket.send() raised exception")


class DemoRefused(RuntimeError):
    """A deployment named like the demo that the demo did not make: never replaced."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _dev_api_key(data_dir: Path) -> str:
    """MCPFC_API_KEY when set; otherwise one key kept in the data dir, so restarts keep working."""
    chosen = os.environ.get("MCPFC_API_KEY")
    if chosen:
        return chosen
    path = data_dir / "dev-api-key"
    if path.exists():
        return path.read_text().strip()
    key = f"mcpfc_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    path.write_text(key)
    path.chmod(0o600)
    return key


class DevStackRefused(RuntimeError):
    """`mcp-fc dev` cannot start here: its port is taken or another stack holds the data dir."""


def check_port_free(host: str, port: int) -> None:
    """Refuse a taken port before anything starts (uvicorn would log the bind error after the worker and the
    emulator are up, and the other process's /healthz would look like ours)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            why = (
                "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            )
            raise DevStackRefused(
                f"port {port} on {host} {why}; choose another with `mcp-fc dev --port N`"
            ) from None


def lock_data_dir(data_dir: Path) -> Any:
    """Hold ``<data dir>/dev.lock`` (an flock, released when this process ends, with its pid inside) or refuse:
    two stacks on one data dir would share the store and re-bind each other's trigger URLs."""
    path = data_dir / "dev.lock"
    fh = open(path, "a+")  # noqa: SIM115 - held for the life of the stack
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise DevStackRefused(
            f"the data dir {data_dir} is in use by another mcp-fc dev (pid {holder}); stop it, or give this "
            "one its own with `--data-dir DIR`"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def worker_environment(env: dict[str, str], *, local_fc: bool) -> dict[str, str]:
    """The dev worker's environment. With the local emulator it talks to loopback only (the emulator, the
    trigger URLs, the data dir), so the host's proxy settings are dropped: the FC SDK sends every call
    through HTTP_PROXY and ignores NO_PROXY, so a proxy set for `uvx` would get (and fail) the emulator's
    calls. The function instances still get them (fc_emulator.runtime.PASSED_PROXY_VARS)."""
    if not local_fc:
        return dict(env)
    return {k: v for k, v in env.items() if k not in PASSED_PROXY_VARS}


def _celery(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m celery -A tasks ARGS...` as a child process, its output appended to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


class DevStack:
    def __init__(
        self,
        *,
        port: int = 8000,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        worker_concurrency: int = 8,
    ) -> None:
        base = Settings()
        self.data_dir = (data_dir or base.data_dir).expanduser().resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.lock = lock_data_dir(self.data_dir)
        self.host, self.port = host, port
        self.worker_concurrency = worker_concurrency
        self.emulator: EmulatorServer | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}
        self.api_key = _dev_api_key(self.data_dir)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_backends(self) -> Settings:
        """Emulator (unless MCPFC_FC_ENDPOINT is set), database, API key, worker and beat."""
        env = dict(os.environ)
        env["MCPFC_DATA_DIR"] = str(self.data_dir)
        env.setdefault("MCPFC_API_URL", self.api_url)
        if not env.get("MCPFC_FC_ENDPOINT"):
            env.update(self.start_emulator(float(env.get("MCPFC_EMULATOR_PENDING_S", "1.0"))))
        self.env = env
        os.environ.update({k: v for k, v in env.items() if k.startswith(("MCPFC_", "ALIBABA_CLOUD_"))})
        settings = Settings()
        self.prepare_store(settings)
        loglevel = env.get("MCPFC_WORKER_LOGLEVEL", "INFO")
        # The worker's banner and logs go to a file: the terminal is for the URLs a user copies.
        worker_env = worker_environment(env, local_fc=self.emulator is not None)
        self.worker = _celery(self.worker_args(loglevel), worker_env, self.worker_log)
        # The periodic scheduler (health checks, ...), as production runs it: `celery -A tasks beat`.
        self.beat = _celery(["beat", "--loglevel", loglevel], env, self.beat_log)
        return settings

    def start_emulator(self, pending_seconds: float) -> dict[str, str]:
        """Start the local FC emulator; the environment that points the worker at it."""
        self.emulator = EmulatorServer(
            port=0, pending_seconds=pending_seconds, state_file=self.data_dir / "emulator-state.json"
        ).start()
        return {
            "MCPFC_FC_ENDPOINT": self.emulator.url,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": self.emulator.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": self.emulator.access_key_secret,
        }

    def prepare_store(self, settings: Settings) -> None:
        """Migrate the database and make the dev API key known to it."""
        from deployer.store import keys
        from deployer.store.db import session_scope
        from deployer.store.migrate import upgrade

        upgrade(settings.effective_database_url)
        with session_scope(settings) as session:
            keys.import_api_key(session, self.api_key, name="dev")

    def worker_args(self, loglevel: str) -> list[str]:
        """`celery -A tasks` arguments of the dev worker: threads, one node name per host, no chatter."""
        return [
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            str(self.worker_concurrency),
            "--loglevel",
            loglevel,
            "--hostname",
            f"dev@{os.uname().nodename}",
            "--without-mingle",
            "--without-gossip",
        ]

    @property
    def worker_log(self) -> Path:
        return self.data_dir / "worker.log"

    @property
    def beat_log(self) -> Path:
        return self.data_dir / "beat.log"

    def stop(self) -> None:
        for proc in (self.beat, self.worker):
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in (self.beat, self.worker):
            if proc is None:
                continue
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.emulator is not None:
            self.emulator.stop()

    def wait_ready(self, timeout: float = 180.0) -> None:
        # Generous: a loaded laptop or CI host can take a minute to import the API; a dead worker fails at once.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker is not None and self.worker.poll() is not None:
                raise RuntimeError(f"the worker exited with code {self.worker.returncode}")
            if self.beat is not None and self.beat.poll() is not None:
                raise RuntimeError(f"the beat exited with code {self.beat.returncode} (see {self.beat_log})")
            try:
                if httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the API did not answer on {self.api_url}/healthz within {timeout:.0f} s")


def deploy_demo(api_url: str, api_key: str, *, timeout: float = 300.0) -> dict[str, Any]:
    """Deploy the sample server through the HTTP API, as a user would, and wait for the result."""
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": f"demo-{secrets.token_hex(8)}"}
    body = {"name": DEMO_NAME, "command": DEMO_COMMAND, "description": DEMO_DESCRIPTION}
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=90) as http:
        resp = http.post("/v1/deployments", json=body, headers=headers)
        if resp.status_code == 409:  # a demo from an earlier run still exists: redeploy it in place
            found = http.get(f"/v1/deployments/{DEMO_NAME}").json()
            if (found.get("spec") or {}).get("description") != DEMO_DESCRIPTION:
                raise DemoRefused(
                    f"a deployment named {DEMO_NAME} exists that the demo did not make: left as it is "
                    f"(`mcp-fc delete {DEMO_NAME}` lets the demo use the name)"
                )
            resp = http.post(f"/v1/deployments/{DEMO_NAME}/redeploy", json={})
        resp.raise_for_status()
        dep = resp.json()
        deadline = time.monotonic() + timeout
        while dep["status"] not in ("succeeded", "failed", "cancelled", "deleted"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the demo deploy is still {dep['status']} after {timeout:.0f} s")
            _say(f"  {dep['status']:<9} {dep.get('stage') or '':<18} {dep.get('progress', 0):>3}%")
            dep = http.get(f"/v1/deployments/{dep['id']}", params={"wait": 20}).json()
        if dep["status"] == "succeeded":
            dep["client_config"] = http.get(f"/v1/deployments/{dep['id']}/client-config").json()
        return dep


def run_dev(
    *, port: int = 8000, data_dir: Path | None = None, demo: bool = False, host: str = "127.0.0.1"
) -> int:
    """`mcp-fc dev`: start the stack, serve the API until Ctrl-C (or SIGTERM / SIGHUP), stop the stack.
    Exit 2 when it cannot start here, 1 when the --demo deploy failed."""
    import uvicorn

    from deployer.api import create_app

    try:
        check_port_free(host, port)
        stack = DevStack(port=port, data_dir=data_dir, host=host)
    except DevStackRefused as exc:
        _say(f"error: {exc}")
        return 2
    settings = stack.start_backends()
    logging.getLogger("asyncio").addFilter(ClosedPeerWrites())
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning"))
    outcome: dict[str, Any] = {}
    _stop_on_signals(server)
    api_done = threading.Event()
    threading.Thread(
        target=_announce, args=(stack, server, api_done, demo, outcome), name="dev-announce", daemon=True
    ).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled; stopping is the normal way out of `dev`
    except SystemExit:
        # uvicorn exits when it cannot bind (the port was taken after our check)
        _say(f"error: the API could not listen on {host}:{port}; choose another with `mcp-fc dev --port N`")
        return 2
    finally:
        api_done.set()
        stack.stop()
    if not server.started:
        _say(f"error: the API did not start on {host}:{port}")
        return 2
    failed_demo = demo and outcome.get("deployment", {}).get("status") != "succeeded"
    return 1 if failed_demo else 0


def _stop_on_signals(server: Any) -> None:
    def stop_on_signal(signum: int, _frame: object) -> None:
        # SIGTERM and SIGHUP end `dev` as Ctrl-C does, through stack.stop() in run_dev: the default action (and
        # uvicorn, which re-raises the SIGTERM it caught once it has stopped) would kill this process before
        # it stops the worker and the function instances.
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop_on_signal)


def _announce(
    stack: DevStack, server: Any, api_done: threading.Event, demo: bool, outcome: dict[str, Any]
) -> None:
    """Once the API answers: print where everything is, then deploy the demo if asked (its result goes
    into `outcome`). Runs beside uvicorn; a stack that does not come up stops the server."""
    try:
        # Ours, not whatever else answers on the port: uvicorn has bound it.
        deadline = time.monotonic() + 180
        while not server.started:
            if server.should_exit or time.monotonic() > deadline or api_done.is_set():
                raise RuntimeError(f"the API did not start on {stack.api_url}")
            time.sleep(0.05)
        stack.wait_ready()
    except RuntimeError as exc:
        _say(f"error: {exc}")
        server.should_exit = True
        return
    _say(_ready_message(stack))
    if demo:
        _run_demo(stack, outcome)


def _ready_message(stack: DevStack) -> str:
    fc = stack.emulator.url if stack.emulator else stack.env.get("MCPFC_FC_ENDPOINT")
    return (
        f"mcp-fc dev is ready\n  API      {stack.api_url}  (docs: {stack.api_url}/docs)\n"
        f"  API key  {stack.api_key}\n  FC       {fc}{' (local emulator)' if stack.emulator else ''}\n"
        f"  data     {stack.data_dir}  (logs: {stack.worker_log.name}, {stack.beat_log.name})\n"
        # Both variables: a CLI without MCPFC_API_URL calls port 8000, not a --port of dev (issue 26 #8).
        f"  try      MCPFC_API_URL={stack.api_url} MCPFC_API_KEY={stack.api_key} mcp-fc deploy NAME "
        + (
            "-- SERVER_CMD   (the local emulator needs no --image)"
            if stack.emulator
            else "--image IMAGE -- SERVER_CMD"
        )
    )


def _run_demo(stack: DevStack, outcome: dict[str, Any]) -> None:
    _say(
        f"deploying the sample MCP server ({' '.join(DEMO_COMMAND)}) without an image: the worker pins it "
        "and builds a code package for this machine's platform and Python (FC would get linux x86_64, "
        "Python 3.12) ..."
    )
    try:
        dep = deploy_demo(stack.api_url, stack.api_key)
    except DemoRefused as exc:
        _say(f"error: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - reported, the stack keeps running
        _say(f"error: the demo deploy did not finish: {exc}")
        return
    outcome["deployment"] = dep
    if dep["status"] != "succeeded":
        _say(f"error: the demo deploy {dep['status']}: {json.dumps(dep.get('error'))}")
        return
    _print_demo(dep)


def _print_demo(dep: dict[str, Any]) -> None:
    urls = dep.get("urls") or {}
    config = dep.get("client_config") or {}
    server = next(iter((config.get("mcpServers") or {}).values()), {})
    headers = server.get("headers") or {}
    print(
        f"\nDeployed {dep['name']}: tools {', '.join(dep.get('tools') or []) or '(none listed)'}", flush=True
    )
    transport = (dep.get("spec") or {}).get("transport") or "streamable-http"
    print(f"MCP URL:         {server.get('url') or urls.get('mcp')}  ({transport})", flush=True)
    for key, value in headers.items():
        print(f"Header:          {key}: {value}", flush=True)
    print("\nmcp.json for Claude Code / Cursor (other clients: mcp-fc config NAME --client ...):", flush=True)
    print(json.dumps(config, indent=2), flush=True)
    print("\nThe endpoint stays live while this command runs (Ctrl-C stops everything).", flush=True)
