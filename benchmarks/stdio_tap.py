"""`python stdio_tap.py LOG CMD ...`: run CMD with every line written to its stdin also appended to LOG.

The relay benchmark's witness of what reached the stdio server (not a product part). CMD's stdout and
stderr are this process's own.
"""

from __future__ import annotations

import subprocess
import sys


def main() -> int:
    log_path, command = sys.argv[1], sys.argv[2:]
    child = subprocess.Popen(command, stdin=subprocess.PIPE)
    assert child.stdin is not None
    with open(log_path, "ab", buffering=0) as log:
        for line in sys.stdin.buffer:
            log.write(line)
            child.stdin.write(line)
            child.stdin.flush()
    child.stdin.close()
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
