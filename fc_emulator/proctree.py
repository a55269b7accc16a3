"""Stopping a function instance's whole process tree, so that no process outlives it.

Each instance is its own process group (``start_new_session=True``). :func:`kill_tree` sends SIGTERM to the
group, waits up to a grace period for the leader, then SIGKILLs the group and every descendant that left it
(on Linux, found through ``/proc`` before the SIGTERM: mcp's stdio client starts the wrapped server in a
session of its own). The caller reaps the leader.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time


def kill_tree(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the process group, wait up to ``grace_s`` for the leader, SIGKILL the group and every
    descendant that outlived it (without reaping the leader)."""
    pid = process.pid
    if process.returncode is None:
        # Children may have left the group (mcp's stdio client starts the server in a session of its own):
        # remember every descendant now, while the tree is intact.
        family = descendants(pid)
        signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and not leader_exited(pid):
            time.sleep(0.01)
        # The leader is exited but not reaped (a zombie keeps its pid), so the group id is still ours:
        # kill whatever is left in the group (children that ignored SIGTERM or were orphaned) ...
        signal_group(pid, signal.SIGKILL)
        # ... and every descendant that outlived its parent's shutdown, in whatever group it is.
        family.update(descendants(pid))
        killed = []
        for child, started in family.items():
            if start_time(child) == started:
                try:
                    os.kill(child, signal.SIGKILL)
                    killed.append((child, started))
                except (ProcessLookupError, PermissionError):
                    pass
        # not our children, so no waitpid: wait (bounded) until they are gone or zombies
        deadline = time.monotonic() + 2.0
        while killed and time.monotonic() < deadline:
            killed = [(c, t) for c, t in killed if start_time(c) == t]
            if killed:
                time.sleep(0.005)
    else:
        # The leader died by itself (and was reaped): what is left of its group (the pgid stays reserved
        # while members exist) goes too.
        signal_group(pid, signal.SIGKILL)


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot) from ``/proc``; None when gone or unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def descendants(pid: int) -> dict[int, int]:
    """``{pid: start time}`` of every live descendant of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == b"Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        starts[int(entry)] = int(fields[19])
    found: dict[int, int] = {}
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        if child in found:
            continue
        found[child] = starts[child]
        todo.extend(children.get(child, []))
    return found


def signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def leader_exited(pid: int) -> bool:
    """True once the process has exited (without reaping it, so its pid/pgid cannot be reused yet)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


__all__ = ["descendants", "kill_tree", "leader_exited", "signal_group", "start_time"]
