"""The beat entries of the config drift and token expiry checks (tasks/schedule.py)."""

from __future__ import annotations

from datetime import timedelta

from deployer import celery_app as queue
from deployer.settings import Settings
from tasks.schedule import beat_schedule


def test_drift_and_token_checks_are_scheduled_on_the_checks_queue(tmp_path):
    entries = beat_schedule(
        Settings(_env_file=None, data_dir=tmp_path, drift_check_interval_s=120, token_check_interval_s=900)
    )
    drift, token = entries["config-drift"], entries["endpoint-token-expiry"]
    assert drift["task"] == queue.DRIFT_SWEEP_TASK and drift["schedule"] == timedelta(seconds=120)
    assert token["task"] == queue.TOKEN_SWEEP_TASK and token["schedule"] == timedelta(seconds=900)
    # never a queue a deploy waits in, and a missed run expires instead of piling up
    assert drift["options"]["queue"] == token["options"]["queue"] == queue.HEALTH_QUEUE
    assert drift["options"]["expires"] == 120


def test_the_drift_check_can_be_turned_off(tmp_path):
    entries = beat_schedule(Settings(_env_file=None, data_dir=tmp_path, drift_check_enabled=False))
    assert "config-drift" not in entries and "endpoint-token-expiry" in entries
