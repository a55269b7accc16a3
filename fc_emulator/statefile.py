"""The FC emulator's state file: every function, trigger, version and alias as JSON, written after each
change and loaded when the server starts (``EmulatorServer(state_file=...)``).

Writes are atomic (a temporary file renamed over the old one) and coalesced: a change whose state a later
write already covered writes nothing. Loading re-opens every HTTP trigger's listener on its previous port
when that port is free (its URL changes otherwise, with a warning). ``FCStateFileMixin`` is mixed into
:class:`~fc_emulator.models.FCBackend`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from typing import Any

from .listeners import TriggerListeners
from .resources import Function, Trigger

logger = logging.getLogger("fc_emulator")

STATE_FILE_VERSION = 1


class FCStateFileMixin:
    """Persistence; needs the backend's ``_lock``, ``_seq``, ``_changed``, ``region``, ``account_id``,
    ``functions``, ``triggers``, ``listeners`` and the versions mixin's records."""

    state_file: str | None
    region: str
    account_id: str
    functions: dict[str, Function]
    triggers: dict[str, dict[str, Trigger]]
    listeners: TriggerListeners
    _lock: threading.RLock
    _persist_lock: threading.Lock
    _seq: int
    _persisted_seq: int

    def _records(self) -> dict[str, Any]:
        # Specs are replaced, never mutated in place, so this shallow copy is safe to dump outside the lock.
        return {
            "version": STATE_FILE_VERSION,
            "region": self.region,
            "account_id": self.account_id,
            "functions": [fn.to_record() for fn in self.functions.values()],
            "triggers": [t.to_record() for ts in self.triggers.values() for t in ts.values()],
            **self._versions_records(),
        }

    def _persist(self, seq: int) -> None:
        """Write the state file if no newer snapshot has been written meanwhile (coalesces bursts)."""
        if self.state_file is None:
            return
        with self._persist_lock:
            if self._persisted_seq >= seq:
                return
            with self._lock:
                records, latest = self._records(), self._seq
            self._write_state(records)
            self._persisted_seq = latest

    def _write_state(self, records: dict[str, Any]) -> None:
        assert self.state_file is not None
        directory = os.path.dirname(os.path.abspath(self.state_file))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fc-emulator-", suffix=".json", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(records, fh, indent=1, sort_keys=True)
            os.replace(tmp, self.state_file)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def reopen_listeners(self) -> None:
        """Re-open the listener of every HTTP trigger (after the listeners were closed, e.g. on restart),
        on its previous port when free."""
        with self._lock:
            changed = False
            for function_name, triggers in self.triggers.items():
                for trigger in triggers.values():
                    if trigger.is_http:
                        previous = trigger.port
                        trigger.url_host = self.listeners.url_host
                        trigger.port = self.listeners.open(function_name, trigger.name, previous)
                        changed = changed or trigger.port != previous
            seq = self._changed() if changed else 0
        if seq:
            self._persist(seq)

    def load_state(self) -> int:
        """Load functions and triggers from ``state_file`` (if it exists) and re-open trigger listeners,
        re-binding each trigger's previous port when it is free. Returns the number of functions loaded."""
        if self.state_file is None or not os.path.exists(self.state_file):
            return 0
        with open(self.state_file, encoding="utf-8") as fh:
            data = json.load(fh)
        if data.get("version") != STATE_FILE_VERSION:
            raise ValueError(f"{self.state_file}: unsupported state file version {data.get('version')!r}")
        with self._lock:
            self.listeners.close_all()
            self.functions = {}
            self.triggers = {}
            for record in data.get("functions", []):
                fn = Function.from_record(record, region=self.region, account_id=self.account_id)
                self.functions[fn.name] = fn
                self.triggers[fn.name] = {}
            for record in data.get("triggers", []):
                trigger = Trigger.from_record(record)
                if trigger.function_name not in self.functions:
                    continue
                if trigger.is_http:
                    previous = trigger.port
                    trigger.url_host = self.listeners.url_host
                    trigger.port = self.listeners.open(trigger.function_name, trigger.name, previous)
                    if previous and trigger.port != previous:
                        logger.warning(
                            "trigger %s/%s: port %s is taken, now listening on %s (URL changed)",
                            trigger.function_name,
                            trigger.name,
                            previous,
                            trigger.port,
                        )
                self.triggers[trigger.function_name][trigger.name] = trigger
            self._load_versions(data, self.functions)
            seq = self._changed()
            count = len(self.functions)
        self._persist(seq)
        return count


__all__ = ["STATE_FILE_VERSION", "FCStateFileMixin"]
