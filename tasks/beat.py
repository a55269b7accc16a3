"""The beat's scheduler: Celery's own, sending only while this beat leads (`beat_scheduler` in tasks/app.py).

Production runs one beat per fleet. Two (a rolling update, an operator's slip, `mcp-fc dev` beside a
production beat on the same database) must not double the work, so every beat renews one lease
(deployer/store/leader.py: a row with an expiry in the database's clock) before each send. The one that holds
it sends; the others wait as standbys and retry every `beat_standby_poll_s`, so when the leader stops
renewing (stopped, crashed, frozen, its host gone) a standby leads within `beat_lease_s` plus that poll, and
the old leader, if it resumes, stands down at its next tick. A new leader counts each entry's interval from the moment it took over, so the
first run after a takeover is one interval later, never a catch-up burst on top of the old leader's runs.

The schedule is kept in memory (Celery's base Scheduler, not the shelve file of PersistentScheduler): two
beats on one host would otherwise share one shelve file, and a restarted beat simply waits one interval.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.beat import Scheduler

from deployer.settings import get_settings
from deployer.store.leader import LeaderLock

log = logging.getLogger("tasks.beat")


class LeaderScheduler(Scheduler):
    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        settings = get_settings()
        self.standby_s = settings.beat_standby_poll_s
        self.lock = LeaderLock(settings.effective_database_url, "beat", lease_s=settings.beat_lease_s)
        self.leading = False
        self._said_standby = False
        kwargs.pop("schedule_filename", None)  # in memory: see the module docstring
        kwargs.setdefault("max_interval", settings.beat_max_loop_s)
        super().__init__(app, *args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._lead():
            return self.standby_s
        return super().tick(*args, **kwargs)

    def _lead(self) -> bool:
        if self.leading:
            if self.lock.held():
                return True
            self.leading = False
            log.warning("beat: lost the lead (pid %d); standing by", os.getpid())
        if not self.lock.try_acquire():
            if not self._said_standby:
                self._said_standby = True
                log.info("beat: standing by (pid %d): another beat leads (%s)", os.getpid(), self.lock.kind)
            return False
        self._said_standby = False
        self.leading = True
        now = self.app.now()
        for entry in self.schedule.values():
            entry.last_run_at = now
        self._heap = None  # re-read: every entry's next run counts from now
        log.info(
            "beat: leading (pid %d, %s); entries: %s",
            os.getpid(),
            self.lock.kind,
            ", ".join(sorted(self.schedule)) or "none",
        )
        return True

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.lock.release()
            self.leading = False
