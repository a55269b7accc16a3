"""A deterministic zip of a directory, and FC's checksum of it.

Same tree, same bytes: entries sorted, every time 1980-01-01, regular files only with their Unix modes
(0755 when any execute bit is set, else 0644) in `external_attr`, no directory entries, no symlinks
(whether FC's unzip keeps them is not public: a symlink to a file is stored as the file, npm's `.bin`
links are left out since the resolved entry point is run directly, any other link is refused), no
`__pycache__`. FC's `codeChecksum` is the zip's CRC-64/XZ (ECMA-182 polynomial, reflected; the algorithm
of devsapp/fc3's `crc64-ecma182.js`), as a decimal string.
"""

from __future__ import annotations

import base64
import os
import stat
import zipfile
from pathlib import Path

import crcmod

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
SKIPPED_DIRS = frozenset({"__pycache__", ".bin"})
_crc64 = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)


class SymlinkRefused(ValueError):
    pass


def _entries(root: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        here = Path(directory)
        for d in list(dirs):
            if d in SKIPPED_DIRS:
                dirs.remove(d)
            elif (here / d).is_symlink():
                raise SymlinkRefused(f"{(here / d).relative_to(root)} is a symbolic link to a directory")
        for name in files:
            path = here / name
            if name.endswith(".pyc"):
                continue
            if path.is_symlink() and not path.resolve().is_file():
                raise SymlinkRefused(f"{path.relative_to(root)} is a symbolic link to nothing in the package")
            found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def write_zip(root: Path, out: Path) -> None:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name, path in _entries(root):
            executable = os.stat(path).st_mode & 0o111
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.create_system = 3  # Unix: FC (and unzip) read the mode bits
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes(), compresslevel=6)


def checksum(data: bytes) -> str:
    """FC's `codeChecksum` of a zip: its CRC-64/XZ as a decimal string."""
    return str(_crc64(data))


def base64_size(size: int) -> int:
    """The length of the base64 text of `size` bytes (what FC's 100 MB limit is counted on here)."""
    return 4 * ((size + 2) // 3)


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
