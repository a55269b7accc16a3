"""What the emulator keeps of its instances' stdout and stderr: a bounded log service.

On FC a function with a ``logConfig`` ships every line its instances print to Simple Log Service, where
``GetLogs`` finds it by time and query; without one the output is gone. The emulator keeps every
function's output (with or without ``logConfig``) in a ring of lines per function, each line with its
time, instance id, qualifier and stream, so the SLS ``GetLogs`` route (:mod:`fc_emulator.sls`)
answers from it. Bounded twice: ``lines_per_function`` lines per function (oldest dropped first) and
``max_functions`` functions (the one written to least recently dropped first); a line longer than
:data:`MAX_LINE_BYTES` is cut. Kept in memory: an emulator restart starts empty, as ``output.log`` in
each instance directory is still there for a post-mortem.

:func:`start_pumps` reads an instance's two pipes line by line in two daemon threads, appends each line to
the instance's ``output.log`` (the file the start-failure messages tail) and to the store.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO

#: Lines kept per function (``MCPFC_EMULATOR_LOG_LINES`` sets it for `mcp-fc dev`).
DEFAULT_LINES_PER_FUNCTION = int(os.environ.get("MCPFC_EMULATOR_LOG_LINES") or 5000)
DEFAULT_MAX_FUNCTIONS = 200
#: A longer line is cut there (SLS's own limit for one field is far larger; this bounds memory).
MAX_LINE_BYTES = 16 * 1024
#: The project and logstore that hold every function's output, with or without a ``logConfig``.
DEFAULT_PROJECT = "fc-emulator"
DEFAULT_LOGSTORE = "function-logs"


@dataclass(frozen=True)
class LogRecord:
    seq: int
    time_ns: int
    function: str
    qualifier: str
    instance_id: str
    stream: str
    message: str
    #: ``(project, logstore)`` of the function's ``logConfig`` when the instance started, if any.
    destination: tuple[str, str] | None = None


class LogStore:
    """Thread-safe rings of output lines, one per function."""

    def __init__(
        self,
        lines_per_function: int = DEFAULT_LINES_PER_FUNCTION,
        max_functions: int = DEFAULT_MAX_FUNCTIONS,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.lines_per_function = max(1, int(lines_per_function))
        self.max_functions = max(1, int(max_functions))
        self._clock = clock
        self._lock = threading.Lock()
        self._rings: OrderedDict[str, deque[LogRecord]] = OrderedDict()
        self._seq = 0
        self._last_ns = 0

    def append(
        self,
        function: str,
        message: str,
        *,
        instance_id: str,
        stream: str,
        qualifier: str = "LATEST",
        destination: tuple[str, str] | None = None,
    ) -> LogRecord:
        with self._lock:
            self._seq += 1
            # strictly increasing times keep "after this line" cursors exact even for lines within one tick
            now = max(self._clock(), self._last_ns + 1)
            self._last_ns = now
            record = LogRecord(self._seq, now, function, qualifier, instance_id, stream, message, destination)
            ring = self._rings.get(function)
            if ring is None:
                ring = self._rings[function] = deque(maxlen=self.lines_per_function)
                while len(self._rings) > self.max_functions:
                    self._rings.popitem(last=False)
            else:
                self._rings.move_to_end(function)
            ring.append(record)
            return record

    def records(
        self,
        *,
        from_ns: int = 0,
        to_ns: int | None = None,
        keep: Callable[[LogRecord], bool] | None = None,
    ) -> list[LogRecord]:
        """Every kept record with ``from_ns <= time < to_ns`` that ``keep`` accepts, oldest first."""
        with self._lock:
            rings = [list(r) for r in self._rings.values()]
        found = [
            r
            for ring in rings
            for r in ring
            if r.time_ns >= from_ns and (to_ns is None or r.time_ns < to_ns) and (keep is None or keep(r))
        ]
        found.sort(key=lambda r: r.seq)
        return found

    def destinations(self) -> set[tuple[str, str]]:
        with self._lock:
            return {r.destination for ring in self._rings.values() for r in ring if r.destination}

    def clear(self) -> None:
        with self._lock:
            self._rings.clear()


def _pump(
    pipe: IO[bytes],
    stream: str,
    log_path: str,
    sink: Callable[[str, str], None],
) -> None:
    try:
        log = open(log_path, "ab")  # noqa: SIM115 - closed below, after the pipe's end
    except OSError:
        log = None
    try:
        while raw := pipe.readline(MAX_LINE_BYTES):
            if log is not None:
                try:
                    log.write(raw)
                    log.flush()
                except OSError:
                    pass
            sink(stream, raw.decode("utf-8", errors="replace").rstrip("\r\n"))
    except (OSError, ValueError):
        pass
    finally:
        if log is not None:
            log.close()
        try:
            pipe.close()
        except OSError:
            pass


def start_pumps(
    pipes: Iterable[tuple[str, IO[bytes] | None]],
    log_path: str,
    sink: Callable[[str, str], None],
    *,
    name: str,
) -> list[threading.Thread]:
    """A daemon thread per ``(stream, pipe)``: each line to ``log_path`` and to ``sink(stream, line)``."""
    threads = []
    for stream, pipe in pipes:
        if pipe is None:
            continue
        thread = threading.Thread(
            target=_pump, args=(pipe, stream, log_path, sink), name=f"{name}-{stream}", daemon=True
        )
        thread.start()
        threads.append(thread)
    return threads


__all__ = [
    "DEFAULT_LOGSTORE",
    "DEFAULT_PROJECT",
    "LogRecord",
    "LogStore",
    "start_pumps",
]
