"""`python -m deployer.cli`: the `mcp-fc` command line."""

import sys

from deployer.cli.main import main

if __name__ == "__main__":  # pragma: no cover - run as a module
    main(sys.argv[1:])
