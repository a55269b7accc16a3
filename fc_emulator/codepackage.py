"""Code-package functions (runtime ``custom``, ``custom.debian10/11/12``): FC's rules, the code store and
the official layers, as strictly as the public sources allow (shared/reference/imageless-oauth.md A.2).

* :func:`take_code` checks a request's ``code`` (exactly one location: ``zipFile``, or ``ossBucketName`` with
  ``ossObjectName``, which the emulator cannot fetch and refuses; the base64 text at most 100 MB; a zip; no
  symbolic links, whose handling by FC is not public; ``checksum`` equal to the zip's CRC-64/XZ when given)
  and keeps the zip in a content-addressed store, the spec keeping ``codeChecksum`` and ``codeSize``.
* :func:`validate_code_function` checks the whole function: code present, handler set, no
  ``customContainerConfig``, ``customRuntimeConfig.args`` not empty (FC answers 400 to ``[]``), the layers'
  ARNs of the function's own region and, for official layers, their runtimes (awesome-layers' table).
* :func:`layer_version` answers GetLayerVersionByArn for the official layers.
* :func:`prepare` unpacks a function's zip as its ``/code`` directory and makes its ``/opt``: each attached
  official runtime layer's interpreter (``/opt/python3.12/bin/python3``, ``/opt/nodejs22/bin/node``) stands
  in as this machine's, and only there, so the function finds it only through its own ``PATH``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from typing import Any

import crcmod

from .exceptions import FCError, InvalidArgument

CODE_RUNTIMES = frozenset({"custom", "custom.debian10", "custom.debian11", "custom.debian12"})
#: FC's limit for code sent through the API: "ZIP, Base64-encoded, 100 MB" (limits page); counted on the text.
MAX_ZIP_BASE64 = 100 * 1024 * 1024
LAYER_ARN_RE = re.compile(
    r"^acs:fc:(?P<region>[a-z0-9-]+):(?P<account>official|\d+):layers/(?P<name>[A-Za-z0-9_-]+)/versions/(?P<version>\d+)$"
)
#: awesome-fc/awesome-layers @ 7c90851 (README table and docs/*/README.md): the latest versions, their
#: runtimes, and the interpreter each puts under /opt.
OFFICIAL_LAYERS: dict[tuple[str, int], dict[str, Any]] = {
    ("Python312", 1): {"runtimes": ["custom.debian12"], "bin": ("python3.12/bin", "python3")},
    ("Python310", 3): {
        "runtimes": ["custom", "custom.debian10", "custom.debian11", "custom.debian12"],
        "bin": ("python3.10/bin", "python3"),
    },
    ("Nodejs22", 3): {"runtimes": ["custom.debian11", "custom.debian12"], "bin": ("nodejs22/bin", "node")},
    ("Nodejs20", 3): {
        "runtimes": ["custom.debian10", "custom.debian11", "custom.debian12"],
        "bin": ("nodejs20/bin", "node"),
    },
    ("Nodejs24", 1): {"runtimes": ["custom.debian11", "custom.debian12"], "bin": ("nodejs24/bin", "node")},
    ("Nodejs18", 3): {"runtimes": ["custom.debian10"], "bin": ("nodejs18/bin", "node")},
}
_crc64 = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)


class LayerVersionNotFound(FCError):
    status = 404
    code = "LayerVersionNotFound"


def code_store() -> str:
    """Zips by checksum, shared by every emulator of this user (content-addressed, so sharing is safe)."""
    root = os.environ.get("FC_EMULATOR_CODE_DIR") or os.path.join(
        tempfile.gettempdir(), f"fc-emulator-code-{os.getuid()}"
    )
    os.makedirs(root, exist_ok=True)
    return root


def is_code_runtime(runtime: Any) -> bool:
    return runtime in CODE_RUNTIMES


def _zip_bytes(code: Mapping[str, Any]) -> bytes:
    zip_file, bucket, obj = code.get("zipFile"), code.get("ossBucketName"), code.get("ossObjectName")
    if bool(zip_file) == bool(bucket or obj) or (bool(bucket) != bool(obj)):
        raise InvalidArgument("Either ossBucketName/ossObjectName or zipFile must be set")
    if not zip_file:
        raise InvalidArgument("the local emulator has no OSS to fetch code from: send code.zipFile")
    if not isinstance(zip_file, str):
        raise InvalidArgument("code.zipFile must be a base64 string")
    if len(zip_file) > MAX_ZIP_BASE64:
        raise InvalidArgument(
            f"code.zipFile is {len(zip_file)} bytes of base64, over the 100 MB limit for code sent through the API"
        )
    try:
        return base64.b64decode(zip_file, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("code.zipFile is not valid base64") from None


def _check_zip(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise InvalidArgument(
                        f"code.zipFile holds a symbolic link ({info.filename}): how FC unpacks links is not "
                        "documented, so the local emulator refuses them"
                    )
                if info.filename.startswith("/") or ".." in info.filename.split("/"):
                    raise InvalidArgument(
                        f"code.zipFile has an entry outside the code directory: {info.filename}"
                    )
    except zipfile.BadZipFile:
        raise InvalidArgument("code.zipFile is not a ZIP archive") from None


def take_code(spec: dict[str, Any]) -> None:
    """Replace ``spec['code']`` by ``codeChecksum``/``codeSize``, keeping the zip in the store."""
    code = spec.pop("code", None)
    if code is None:
        return
    if not isinstance(code, Mapping):
        raise InvalidArgument("code must be an object")
    data = _zip_bytes(code)
    _check_zip(data)
    checksum = str(_crc64(data))
    given = code.get("checksum")
    if given not in (None, "") and str(given) != checksum:
        raise InvalidArgument(f"code.checksum {given} does not match the code's CRC-64 {checksum}")
    path = os.path.join(code_store(), f"{checksum}.zip")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    spec["codeChecksum"] = checksum
    spec["codeSize"] = len(data)


def _check_layers(layers: list[str], runtime: str, region: str) -> None:
    for arn in layers:
        m = LAYER_ARN_RE.fullmatch(arn)
        if m is None:
            raise InvalidArgument(
                f"layer {arn!r} is not a layer version ARN (acs:fc:<region>:<account>:layers/<name>/versions/<n>)"
            )
        if m["region"] != region:
            raise InvalidArgument(f"layer {arn} is in region {m['region']}, not the function's {region}")
        if m["account"] == "official":
            known = OFFICIAL_LAYERS.get((m["name"], int(m["version"])))
            if known is None:
                raise InvalidArgument(f"no official layer {m['name']} version {m['version']}")
            if runtime not in known["runtimes"]:
                raise InvalidArgument(
                    f"layer {m['name']}/{m['version']} is not compatible with runtime {runtime} "
                    f"(it runs on {', '.join(known['runtimes'])})"
                )


def validate_code_function(spec: Mapping[str, Any], region: str) -> None:
    """The whole-function rules of a code-package runtime (see the module docstring)."""
    runtime = spec.get("runtime")
    if not is_code_runtime(runtime):
        if spec.get("codeChecksum") or spec.get("customRuntimeConfig"):
            raise InvalidArgument(
                f"runtime {runtime} takes customContainerConfig, not code or customRuntimeConfig"
            )
        return
    if spec.get("customContainerConfig"):
        raise InvalidArgument("Specify either code or customContainerConfig: runtime {runtime} runs code")
    if not spec.get("codeChecksum"):
        raise InvalidArgument("Either ossBucketName/ossObjectName or zipFile must be set")
    if not spec.get("handler"):
        raise InvalidArgument("Handler is required but not provided")
    config = spec.get("customRuntimeConfig")
    if config is not None:
        if not isinstance(config, Mapping):
            raise InvalidArgument("customRuntimeConfig must be an object")
        for key in ("command", "args"):
            value = config.get(key)
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(x, str) for x in value)
            ):
                raise InvalidArgument(f"customRuntimeConfig.{key} must be a list of strings")
        if config.get("args") == []:
            raise InvalidArgument("customRuntimeConfig.args must not be empty (leave it out instead)")
    _check_layers(list(spec.get("layers") or []), str(runtime), region)


def layer_version(arn: str, region: str) -> dict[str, Any]:
    """GetLayerVersionByArn: an official layer of the catalogue in this region, else LayerVersionNotFound."""
    m = LAYER_ARN_RE.fullmatch(arn)
    known = OFFICIAL_LAYERS.get((m["name"], int(m["version"]))) if m and m["account"] == "official" else None
    if m is None or known is None or m["region"] != region:
        raise LayerVersionNotFound(f"layer version {arn} does not exist")
    return {
        "layerName": m["name"],
        "version": int(m["version"]),
        "layerVersionArn": arn,
        "compatibleRuntime": list(known["runtimes"]),
        "acl": "1",
        "description": f"official layer {m['name']} (local emulator: this machine's interpreter stands in)",
    }


def host_interpreter(program: str) -> str | None:
    """This machine's stand-in for a layer's interpreter."""
    if program == "python3":
        return getattr(sys, "_base_executable", None) or sys.executable
    return shutil.which(program)


def prepare(spec: Mapping[str, Any], root: str) -> tuple[str, str]:
    """``(code dir, opt dir)`` for a function: its zip unpacked (once per checksum) and its layers' /opt."""
    checksum = str(spec["codeChecksum"])
    code_dir = os.path.join(root, "code", checksum)
    if not os.path.isdir(code_dir):
        tmp = f"{code_dir}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(os.path.join(code_store(), f"{checksum}.zip")) as zf:
            for info in zf.infolist():
                target = zf.extract(info, tmp)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(target, mode)
        try:
            os.replace(tmp, code_dir)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    layers = sorted(spec.get("layers") or [])
    opt_dir = os.path.join(root, "opt", hashlib.sha256("\n".join(layers).encode()).hexdigest()[:16])
    for arn in layers:
        m = LAYER_ARN_RE.fullmatch(arn)
        known = OFFICIAL_LAYERS.get((m["name"], int(m["version"]))) if m else None
        if not known:
            continue  # a custom layer: its content is not in the emulator
        bin_dir, program = known["bin"]
        stand_in = host_interpreter(program)
        link = os.path.join(opt_dir, bin_dir, program)
        if stand_in and not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(stand_in, link)
    os.makedirs(opt_dir, exist_ok=True)
    return code_dir, opt_dir


def map_paths(value: str, code_dir: str, opt_dir: str) -> str:
    """``/code`` and ``/opt`` (in an argv element or each entry of a PATH) to the function's own dirs."""

    def one(part: str) -> str:
        for prefix, local in (("/code", code_dir), ("/opt", opt_dir)):
            if part == prefix or part.startswith(prefix + "/"):
                return local + part[len(prefix) :]
        return part

    return ":".join(one(p) for p in value.split(":")) if ":" in value else one(value)
