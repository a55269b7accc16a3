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

The modules, by the API they answer. A module imports those below or beside it, never one above (control.py
knows the server through a Protocol), so there is no import cycle; lint-imports checks that::

    server.py          EmulatorServer, run(): the FC API endpoint, routes every request below
    ├── routes.py        FC API 2023-03-30 paths → FCBackend actions; signing.py checks ACS3 signatures
    ├── faults.py        injected latency, throttling, errors and lost responses per action
    ├── control.py       /_emulator/... (reset, state, stats, faults, config, images, instances)
    ├── sls.py           SLS GetLogs at the same endpoint, answered from logstore.py
    ├── http.py          the HTTP plumbing both planes share (loopback server, JSON handler)
    ├── models.py        FCBackend: one method per action; the functions' actions and the core
    │   ├── triggers.py    CreateTrigger … ListTriggers
    │   ├── versions.py    PublishFunctionVersion … DeleteAlias
    │   ├── statefile.py   the JSON state file (state_file=)
    │   ├── resources.py   Function and Trigger, their states and wire shapes
    │   ├── listeners.py   the hook from the backend to the trigger listeners (a Protocol)
    │   ├── validation.py  what input FC accepts (strict where FC's rules are unpublished)
    │   └── wire.py        timestamps and pagination tokens
    ├── dataplane.py     ListenerHub, DataPlane: HTTP trigger URLs (methods, auth, then the function)
    │   ├── trigger_auth.py  anonymous, jwt (jwt_verify.py, the emulator's own check), function
    │   ├── proxy.py         the streaming reverse proxy to an instance
    │   └── runtime.py       InstanceManager: instances as local processes, idle/liveness reaper
    │       ├── launch.py      plan, spawn, wait until ready (command.py, environment.py, probes.py)
    │       ├── instance.py    one running instance and its output tail (serverwatch.py's record)
    │       ├── proctree.py    stopping a process group and its escaped descendants
    │       └── logstore.py    every instance's output lines, for GetLogs
    └── exceptions.py    FC's typed errors and their JSON body
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
