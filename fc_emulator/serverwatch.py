"""Run the stdio MCP server behind a bridge and record how it ended: ``python serverwatch.py DIR -- ARGV``.

The emulator puts this in front of the part of a bridge's command after its first ``--`` (the wrapped
stdio server), because a bridge reports its own exit code, never its server's: mcp-proxy exits 1 with a
long traceback whatever the server did. This program stays out of the way (stdin and stdout are the
bridge's pipes, inherited by the server untouched; its environment is passed on unchanged; SIGTERM, SIGINT
and SIGHUP are forwarded; it exits with the server's code) and records:

* ``DIR/server.log``: the server's stderr (also copied to this program's stderr, where the bridge sent it);
* ``DIR/server-exit``: one JSON line per server process that ended, ``{"pid", "code", "command"}``
  (``code`` negative for a signal, 127 when the program was not found, 126 when it could not be run);
* a line on stderr naming the server's exit code, so the instance's own output says it too.

Standard library only, run with ``python -I``: it must not import the emulator (or anything on the
function's ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

PREFIX = "[fc-emulator]"


def _record(directory: str, pid: int | None, code: int, command: str) -> None:
    try:
        with open(os.path.join(directory, "server-exit"), "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"pid": pid, "code": code, "command": command}) + "\n")
    except OSError:
        pass


def _copy(source: int, log_path: str) -> None:
    """The server's stderr to ours and to the log, as it comes."""
    try:
        log = open(log_path, "ab")  # noqa: SIM115 - closed below, after the pipe's end
    except OSError:
        log = None
    try:
        while chunk := os.read(source, 65536):
            try:
                os.write(2, chunk)
            except OSError:
                pass
            if log is not None:
                log.write(chunk)
                log.flush()
    except OSError:
        pass
    finally:
        if log is not None:
            log.close()


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(f"usage: {argv[0]} DIR -- COMMAND...", file=sys.stderr)
        return 2
    directory, command = argv[1], argv[2:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print(f"{PREFIX} no MCP server command after --", file=sys.stderr)
        return 2
    shown = " ".join(command)
    log_path = os.path.join(directory, "server.log")
    try:
        child = subprocess.Popen(command, stderr=subprocess.PIPE)
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        why = "was not found on PATH" if code == 127 else f"could not be run ({exc.strerror or exc})"
        line = f"{PREFIX} the MCP server command {command[0]!r} {why} (exit code {code})\n"
        sys.stderr.write(line)
        try:
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(line)
        except OSError:
            pass
        _record(directory, None, code, shown)
        return code

    def forward(signum: int, _frame: object) -> None:
        try:
            child.send_signal(signum)
        except OSError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    assert child.stderr is not None
    copier = threading.Thread(target=_copy, args=(child.stderr.fileno(), log_path), daemon=True)
    copier.start()
    code = child.wait()
    # A grandchild may hold the pipe open; the server's own lines are in by now or soon.
    copier.join(timeout=1.0)
    _record(directory, child.pid, code, shown)
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    try:
        sys.stderr.write(f"{PREFIX} the MCP server (pid {child.pid}) {how}\n")
        sys.stderr.flush()
    except OSError:
        pass
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
