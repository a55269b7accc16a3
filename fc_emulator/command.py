"""The container's process: what a container runtime would run for a function, rewritten for loopback.

:func:`container_argv` is ``docker run``'s rule (the function's ``entrypoint`` + ``command``, else the image's
ENTRYPOINT + ``command`` or CMD); :func:`split_init` separates an init program (``tini``, ``catatonit``,
``dumb-init``) from what it runs; :func:`map_command` maps the container port to a loopback one (``docker
run -p``) and a wildcard ``--host`` to ``127.0.0.1``; :func:`watch_server` puts
:mod:`~fc_emulator.serverwatch` in front of a bridge's stdio server. The rules and their limits are in
:mod:`fc_emulator.runtime`'s docstring.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_CONTAINER_PORT = 9000
#: The program put in front of a bridge's stdio server to record its exit code and stderr.
SERVER_WATCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serverwatch.py")
#: ``--host`` values rewritten to loopback.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", "*"})
#: Init programs the emulator recognises in front of a container's program (see the module docstring).
INIT_PROGRAMS = frozenset({"tini", "catatonit", "dumb-init"})
#: Their options that take a value (tini ``-p SIG``/``-e CODE``, dumb-init ``-r s:r``).
INIT_VALUE_OPTIONS = frozenset({"-p", "-e", "-r", "--rewrite"})


def container_argv(container: Mapping[str, Any], image: Mapping[str, Any] | None = None) -> list[str]:
    """The container's process: ``entrypoint + command`` when the function sets an entrypoint (it replaces
    the image's ENTRYPOINT and CMD, as ``docker run --entrypoint`` does); otherwise the image's ENTRYPOINT
    followed by ``command``, or by the image's CMD when there is no command."""
    image = image or {}
    entrypoint = [str(a) for a in container.get("entrypoint") or []]
    command = [str(a) for a in container.get("command") or []]
    if entrypoint:
        return entrypoint + command
    return [str(a) for a in image.get("entrypoint") or []] + (
        command or [str(a) for a in image.get("cmd") or []]
    )


def split_init(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(init part, program part)``: a recognised init program and its options, then what it runs."""
    if not argv or os.path.basename(argv[0]) not in INIT_PROGRAMS:
        return [], list(argv)
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return list(argv[: i + 1]), list(argv[i + 1 :])
        if not arg.startswith("-"):
            break
        i += 2 if arg in INIT_VALUE_OPTIONS else 1
    return list(argv[:i]), list(argv[i:])


def map_command(argv: Sequence[str], container_port: int, host_port: int) -> tuple[list[str], bool]:
    """Rewrite ``argv`` for a loopback port: ``(new argv, whether a port flag was mapped)``.

    Before the first ``--``: ``--port``/``-p`` values equal to ``container_port`` become ``host_port`` and
    wildcard ``--host`` values become ``127.0.0.1``.
    """
    out = list(argv)
    end = out.index("--") if "--" in out else len(out)
    wanted = str(container_port)
    mapped = False
    i = 1  # out[0] is the program
    while i < end:
        arg = out[i]
        if arg in ("--port", "-p") and i + 1 < end:
            if out[i + 1] == wanted:
                out[i + 1] = str(host_port)
                mapped = True
            i += 2
            continue
        if arg == "--host" and i + 1 < end:
            if out[i + 1] in WILDCARD_HOSTS:
                out[i + 1] = "127.0.0.1"
            i += 2
            continue
        if arg.startswith("--port=") and arg.partition("=")[2] == wanted:
            out[i] = f"--port={host_port}"
            mapped = True
        elif arg.startswith("--host=") and arg.partition("=")[2] in WILDCARD_HOSTS:
            out[i] = "--host=127.0.0.1"
        i += 1
    return out, mapped


def watch_server(argv: Sequence[str], directory: str) -> tuple[list[str], bool]:
    """``argv`` with :mod:`~fc_emulator.serverwatch` in front of the stdio server after its first
    ``--`` (``(new argv, whether it was watched)``): a bridge reports its own exit code, not its server's."""
    out = list(argv)
    if "--" not in out[1:]:
        return out, False
    cut = out.index("--", 1) + 1
    if cut >= len(out):
        return out, False
    return out[:cut] + [sys.executable, "-I", SERVER_WATCH, directory, "--"] + out[cut:], True


__all__ = [
    "DEFAULT_CONTAINER_PORT",
    "INIT_PROGRAMS",
    "SERVER_WATCH",
    "WILDCARD_HOSTS",
    "container_argv",
    "map_command",
    "split_init",
    "watch_server",
]
