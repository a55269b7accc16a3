"""The delete task: the trigger first, then the function (FC refuses with FunctionNotEmpty otherwise).

Deleting what is already gone counts as done, so a redelivered or repeated delete converges.
"""

from __future__ import annotations

from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from celery import Task

from deployer.errors import FCError
from deployer.queue import DELETE_TASK
from schemas import Status
from tasks.app import app
from tasks.context import Busy, Run, Superseded

MAX_TRANSIENT_RETRIES = 5


@app.task(name=DELETE_TASK, bind=True, acks_late=True, max_retries=None, default_retry_delay=2)
def delete(self: Task, deployment_id: str) -> dict[str, Any]:
    run = Run(self, deployment_id, expected={Status.deleting})
    try:
        row = run.load()
        run.acquire()
    except Superseded:
        return {"status": "superseded"}
    except Busy:
        raise self.retry(countdown=2) from None
    checkpoint = dict(row.checkpoint or {})
    countdown: float | None = None
    try:
        run.progress("deleting", 30, f"deleting trigger and function {row.name}")
        run.ctx.gateway.delete_function_and_triggers(row.name)
        run.finish(Status.deleted, "deleted", stage="deleted", progress=100, urls={})
        return {"status": "deleted"}
    except SoftTimeLimitExceeded:
        countdown = 5
    except FCError as exc:
        count = int(checkpoint.get("transient", 0)) + 1
        if not exc.retryable or count > MAX_TRANSIENT_RETRIES:
            return run.fail(exc, "delete")
        run.save(checkpoint={**checkpoint, "transient": count})
        countdown = min(60, 2**count)
    except Exception as exc:  # noqa: BLE001 - recorded on the row; the traceback goes to the log
        return run.fail(exc, "delete")
    finally:
        run.release()
    raise self.retry(countdown=countdown)
