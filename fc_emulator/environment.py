"""The environment a function instance runs with: a minimal one, never the emulator's own.

``PATH`` (the emulator's, with the virtualenv's ``bin`` in front), ``HOME``, ``TMPDIR``, then the host
variables of :data:`PASSED_HOST_VARS` that are set (an allowlist), then the function's
``environmentVariables``, then the ``FC_*`` variables FC injects, then fake STS credentials when the function
has a ``role`` whose credentials are not kept out (``disableInjectCredentials``).
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

#: Variables passed from the emulator's environment when set (besides PATH, HOME and TMPDIR), so that a
#: command which fetches its server at start (`uvx`, `npx`) works here as in the user's shell: the locale,
#: the host's certificates (a TLS-intercepting proxy's CA, a system bundle uv or Node would not find), its
#: proxies (both spellings: curl and Python read the lowercase ones, others the uppercase), and where uv, pip
#: and npm keep their caches and find their index. An allowlist, not a denylist: the emulator's environment
#: holds the deployer's own settings (MCPFC_*), real Alibaba keys (ALIBABA_CLOUD_*) and whatever else the
#: user's shell has (tokens of other tools); none of it reaches a function, as on FC.
PASSED_LOCALE_VARS = ("LANG", "LC_ALL", "LC_CTYPE")
PASSED_CERT_VARS = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "NODE_USE_SYSTEM_CA",
    "PIP_CERT",
    "UV_NATIVE_TLS",
)
PASSED_PROXY_VARS = tuple(
    spelling
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    for spelling in (name, name.lower())
)
PASSED_TOOL_VARS = (
    "UV_CACHE_DIR",
    "UV_TOOL_DIR",
    "UV_TOOL_BIN_DIR",
    "UV_PYTHON_INSTALL_DIR",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_OFFLINE",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "NPM_CONFIG_CACHE",
    "npm_config_cache",
    "NPM_CONFIG_REGISTRY",
    "npm_config_registry",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
)
PASSED_HOST_VARS = PASSED_LOCALE_VARS + PASSED_CERT_VARS + PASSED_PROXY_VARS + PASSED_TOOL_VARS
#: ``disableInjectCredentials`` values that keep the role's credentials out of the environment.
NO_ENV_CREDENTIALS = frozenset({"Env", "All"})


def runtime_path() -> str:
    """The emulator's ``PATH`` with the directory of ``sys.executable`` (the venv's ``bin``) in front."""
    bindir = os.path.dirname(os.path.abspath(sys.executable))
    parts = [p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p]
    if bindir not in parts:
        parts.insert(0, bindir)
    return os.pathsep.join(parts)


def injects_credentials(spec: Mapping[str, Any]) -> bool:
    """FC hands the role's STS credentials to the environment unless ``disableInjectCredentials`` says no."""
    return bool(spec.get("role")) and spec.get("disableInjectCredentials") not in NO_ENV_CREDENTIALS


def build_environment(
    spec: Mapping[str, Any],
    *,
    port: int,
    instance_id: str,
    account_id: str,
    region: str,
    qualifier: str = "LATEST",
) -> dict[str, str]:
    """The instance's whole environment (see the module docstring); nothing else of the emulator's."""
    env: dict[str, str] = {
        "PATH": runtime_path(),
        "HOME": os.environ.get("HOME") or tempfile.gettempdir(),
        "TMPDIR": os.environ.get("TMPDIR") or tempfile.gettempdir(),
    }
    for name in PASSED_HOST_VARS:
        if os.environ.get(name):
            env[name] = os.environ[name]
    env.update({str(k): str(v) for k, v in (spec.get("environmentVariables") or {}).items()})
    env.update(
        {
            "FC_FUNCTION_NAME": str(spec.get("functionName", "")),
            "FC_FUNCTION_HANDLER": str(spec.get("handler", "")),
            "FC_FUNCTION_MEMORY_SIZE": str(spec.get("memorySize", "")),
            "FC_QUALIFIER": qualifier,
            "FC_REGION": region,
            "FC_ACCOUNT_ID": account_id,
            "FC_INSTANCE_ID": instance_id,
            "FC_SERVER_PORT": str(port),
            "FC_CUSTOM_LISTEN_PORT": str(port),
            "PORT": str(port),
        }
    )
    if injects_credentials(spec):
        env.update(
            {
                "ALIBABA_CLOUD_ACCESS_KEY_ID": f"STS.emulated{secrets.token_hex(8)}",
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET": secrets.token_urlsafe(24),
                "ALIBABA_CLOUD_SECURITY_TOKEN": f"emulated-sts-token-{secrets.token_urlsafe(32)}",
            }
        )
    return env


__all__ = [
    "PASSED_CERT_VARS",
    "PASSED_HOST_VARS",
    "PASSED_LOCALE_VARS",
    "PASSED_PROXY_VARS",
    "PASSED_TOOL_VARS",
    "build_environment",
    "injects_credentials",
    "runtime_path",
]
