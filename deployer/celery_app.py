"""The Celery side both the API (producer) and the worker (`tasks/`) share: config and task names.

The API only ever sends a deployment id (the task looks everything else up), never the spec or its
secrets. Settings follow shared/reference/celery.md: late acks, retry on worker loss, prefetch 1,
duplicate suppression, soft shutdown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from pathlib import Path
from time import monotonic
from typing import Any

from celery import Celery
from kombu import Queue
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

from deployer.settings import Settings, get_settings

DEPLOY_TASK = "mcpfc.deploy"
DELETE_TASK = "mcpfc.delete"
VERIFY_TASK = "mcpfc.verify"  # re-checks FC after a write timed out (a late landing), tasks/verify.py
# Deploys that have waited a while for FC to make their function Active re-poll from a queue of their own:
# at scale (1,000 waiters re-poll ~33 times a second) they would otherwise take the slots new deploys
# need. One worker may consume every queue (the default); at scale run `waiting` on workers of its own.
WAITING_QUEUE = "waiting"
# Scheduled health checks (tasks/health.py) have a queue of their own, so a fleet's probes never sit in
# front of a deploy; at scale run `--queues health` workers of their own.
HEALTH_QUEUE = "health"
HEALTH_SWEEP_TASK = "mcpfc.health.sweep"  # beat: picks the deployments due, sends them out in batches
HEALTH_BATCH_TASK = "mcpfc.health.batch"  # probes one batch of deployments
# The other scheduled checks (issue 15 #4, #5) share that queue: config drift (tasks/drift.py: FC reads) and
# endpoint token expiry (tasks/tokens.py: no FC call).
DRIFT_SWEEP_TASK = "mcpfc.drift.sweep"  # beat: one check per succeeded deployment, spread over the interval
DRIFT_CHECK_TASK = "mcpfc.drift.check"
TOKEN_SWEEP_TASK = "mcpfc.tokens.sweep"  # beat: flag (and, opted in, rotate) tokens near expiry
# Image-less deploys build their code package (npm / uv installs, tens of seconds) from a queue of their own,
# so a burst of builds never holds the workers that deploy (tasks/build_steps.py); at scale run `--queues
# build` workers of their own, with npm and uv.
BUILD_QUEUE = "build"
QUEUES = ("high", "default", "low", WAITING_QUEUE, HEALTH_QUEUE, BUILD_QUEUE)
PRIORITY_QUEUE = {"high": "high", "normal": "default", "low": "low"}

# Hard limit per task run. Waiting for FC is done by re-scheduling, so one run is short: a few FC calls
# (each bounded by the SDK's connect/read timeouts and the gateway's retries) plus the MCP probe.
SOFT_TIME_LIMIT_S = 240
TIME_LIMIT_S = 300


log = logging.getLogger(__name__)


class _AtomicFilesystemChannel(filesystem.Channel):
    """kombu's filesystem channel creates a message file, then writes it: a worker in another process can
    take the file in between, read it empty, and die with JSONDecodeError ("Unrecoverable error"), which
    stops the embedded worker. Here a message is written to a hidden file and renamed into the queue folder
    (atomic on POSIX), so a consumer sees whole messages only; a message file that still cannot be decoded
    (a truncated disk write) is logged and skipped instead of killing the worker."""

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        tmp = os.path.join(self.data_folder_out, f".{uuid.uuid4().hex}.tmp")  # never matches *.{queue}.msg
        try:
            with open(tmp, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(tmp, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc

    def _get(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        while True:
            try:
                return super()._get(queue, *args, **kwargs)
            except ValueError as exc:  # json.JSONDecodeError: the file is consumed already, go on
                log.error("embedded broker: skipped an undecodable message in queue %s (%s)", queue, exc)


class FilesystemTransport(filesystem.Transport):
    """The embedded broker (`filesystem://`) with atomic message files."""

    Channel = _AtomicFilesystemChannel


def broker_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    url = settings.effective_broker_url
    if url.startswith("filesystem://"):
        base = settings.broker_dir
        for sub in ("queue", "processed", "control"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        return url, {
            "data_folder_in": str(base / "queue"),
            "data_folder_out": str(base / "queue"),
            "processed_folder": str(base / "processed"),
            "store_processed": False,
            "control_folder": str(base / "control"),
            "polling_interval": 0.05,
        }
    if url.startswith(("redis://", "rediss://")):
        return url, {
            # Must exceed the longest countdown we schedule and the hard time limit (celery.md A.1).
            "visibility_timeout": 3600,
            "queue_order_strategy": "priority",
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
        }
    if url.startswith(("amqp://", "amqps://", "pyamqp://")):
        return url, {"confirm_publish": True}
    return url, {}


def task_events(settings: Settings) -> bool:
    """Whether workers (and the API, for task-sent) publish Celery task events."""
    if settings.task_events is not None:
        return settings.task_events
    return not settings.effective_broker_url.startswith("filesystem://")


def celery_config(settings: Settings) -> dict[str, Any]:
    broker_url, transport_options = broker_options(settings)
    return dict(
        broker_url=broker_url,
        broker_transport=f"{__name__}:FilesystemTransport"
        if broker_url.startswith("filesystem://")
        else None,
        broker_transport_options=transport_options,
        result_backend=settings.effective_result_backend,
        result_backend_transport_options=transport_options if broker_url.startswith("redis") else {},
        result_extended=True,
        result_expires=7 * 24 * 3600,
        database_create_tables_at_setup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_acks_on_failure=True,
        task_acks_on_timeout=True,
        task_retry_on_worker_lost=True,
        task_track_started=True,
        task_soft_time_limit=SOFT_TIME_LIMIT_S,
        task_time_limit=TIME_LIMIT_S,
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="default",
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=4,
        broker_pool_acquire_timeout=10,
        worker_prefetch_multiplier=1,
        worker_deduplicate_successful_tasks=not broker_url.startswith("filesystem://"),
        worker_soft_shutdown_timeout=30.0,
        worker_enable_soft_shutdown_on_idle=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        # Task events (what Flower and `celery events` show). On for Redis and RabbitMQ; the embedded file
        # broker has nobody to watch them. MCPFC_TASK_EVENTS=false turns them off (a little broker traffic).
        worker_send_task_events=task_events(settings),
        task_send_sent_event=task_events(settings),
    )


def make_celery(settings: Settings | None = None, *, main: str = "mcpfc") -> Celery:
    settings = settings or get_settings()
    app = Celery(main)
    app.conf.update(celery_config(settings))
    return app


_producer: dict[str, Celery] = {}


def producer(settings: Settings | None = None) -> Celery:
    """The API's Celery app, one per broker URL (it only sends tasks and reads results)."""
    settings = settings or get_settings()
    key = f"{settings.effective_broker_url}|{settings.effective_result_backend}|{settings.data_dir}"
    if key not in _producer:
        _producer[key] = make_celery(settings, main="mcpfc-api")
    return _producer[key]


def enqueue(
    app: Celery,
    *,
    task: str,
    deployment_id: str,
    task_id: str,
    priority: str = "normal",
    countdown: float | None = None,
) -> None:
    """Send the deployment id only. Raises kombu's OperationalError when the broker is down."""
    app.send_task(
        task,
        args=[deployment_id],
        task_id=task_id,
        queue=PRIORITY_QUEUE.get(priority, "default"),
        countdown=countdown,
        retry=True,
    )


def data_path(settings: Settings) -> Path:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings.data_dir
