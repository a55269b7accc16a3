"""The build cache: built code packages by key (the lock's hash, the target, the bridge), bounded in size
and evicted least-recently-used. `<key>.zip` with `<key>.json` (its manifest) beside it; a hit touches
both (their mtime is the LRU order); inserts and evictions hold an flock, so workers on one host share it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class BuildCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        root.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.zip", self.root / f"{key}.json"

    def get(self, key: str) -> tuple[Path, dict[str, Any]] | None:
        zip_path, meta_path = self.paths(key)
        try:
            meta = json.loads(meta_path.read_text())
            os.utime(zip_path)
            os.utime(meta_path)
        except (OSError, ValueError):
            return None
        return zip_path, meta

    def put(self, key: str, built_zip: Path, meta: dict[str, Any]) -> Path:
        """Move `built_zip` in (atomically), then evict the least recently used past `max_bytes` (never the
        package just put)."""
        zip_path, meta_path = self.paths(key)
        with self._locked():
            os.replace(built_zip, zip_path)
            tmp = meta_path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(meta, sort_keys=True))
            os.replace(tmp, meta_path)
            self._evict(keep=key)
        return zip_path

    def _evict(self, keep: str) -> None:
        zips = sorted(self.root.glob("*.zip"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in zips)
        for path in zips:
            if total <= self.max_bytes:
                break
            if path.stem == keep:
                continue
            total -= path.stat().st_size
            for stale in self.paths(path.stem):
                stale.unlink(missing_ok=True)

    def keys(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.zip"))
