"""A local Alibaba Cloud Function Compute 3.0 (API 2023-03-30) emulator, in the style of moto's server mode.

Real HTTP on loopback, real ACS3-HMAC-SHA256 signature checks, FC's error codes and wire format, fault
injection and an unsigned control API under ``/_emulator/``. Each HTTP trigger gets its own loopback port,
and its URL is live: the trigger's methods and auth (anonymous, jwt, function) are enforced, the
first request starts the function's container command as a local process (:mod:`.runtime`), and requests
are streamed through to it (:mod:`.proxy`), SSE included.

    from fc_emulator import EmulatorServer
    with EmulatorServer(port=0, pending_seconds=0.2) as fc:
        config = Config(access_key_id=fc.access_key_id, access_key_secret=fc.access_key_secret,
                        endpoint=fc.endpoint, protocol="http")
"""

from .dataplane import DataPlane
from .exceptions import FCError
from .faults import FaultInjector
from .models import FCBackend, Function, Trigger
from .runtime import FunctionNotStarted, InstanceManager
from .server import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_PORT, EmulatorServer, run

__all__ = [
    "DEFAULT_ACCESS_KEY_ID",
    "DEFAULT_ACCESS_KEY_SECRET",
    "DEFAULT_PORT",
    "DataPlane",
    "EmulatorServer",
    "FCBackend",
    "FCError",
    "FaultInjector",
    "Function",
    "FunctionNotStarted",
    "InstanceManager",
    "Trigger",
    "run",
]
