"""The delete task: the trigger first, then the function (FC refuses with FunctionNotEmpty otherwise).

Deleting what is already gone counts as done, so a redelivered or repeated delete converges.
"""

from __future__ import annotations

import time
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from celery import Task
from sqlalchemy.exc import SQLAlchemyError

from deployer.errors import FCError
from deployer.queue import DELETE_TASK
from schemas import Status
from tasks.app import app
from tasks.context import (
    DB_RETRY_S,
    Busy,
    LeaseLost,
    Run,
    Superseded,
    database_retry,
    log_database_error,
)

MAX_TRANSIENT_RETRIES = 5


@app.task(name=DELETE_TASK, bind=True, acks_late=True, max_retries=None, default_retry_delay=2)
def delete(self: Task, deployment_id: str) -> dict[str, Any]:
    run = Run(self, deployment_id, expected={Status.deleting})
    try:
        run.acquire()
    except Busy:
        raise self.retry(countdown=2) from None
    except SQLAlchemyError as exc:
        raise database_retry(self, deployment_id, exc) from None
    countdown: float | None = None
    try:
        row = run.load()
        checkpoint = dict(row.checkpoint or {})
        try:
            run.progress("deleting", 30, f"deleting trigger and function {row.name}")
            run.check_lease()
            run.ctx.gateway_for(row.region).delete_function_and_triggers(row.name)
            run.finish(Status.deleted, "deleted", stage="deleted", progress=100, urls={})
            return {"status": "deleted"}
        except SoftTimeLimitExceeded:
            countdown = 5
        except FCError as exc:
            count = int(checkpoint.get("transient", 0)) + 1
            if not exc.retryable or count > MAX_TRANSIENT_RETRIES:
                return run.fail(exc, "delete")
            checkpoint["transient"] = count
            countdown = min(60, 2**count)
        # Record when the next run is due, so recovery leaves the row alone until then.
        run.save(checkpoint={**checkpoint, "due_at": round(time.time() + countdown, 3)})
    except Superseded:
        return {"status": "superseded"}
    except LeaseLost:
        return {"status": "lease-lost"}
    except SQLAlchemyError as exc:
        # The database is away (not a failure of the delete): run again; deleting is idempotent.
        log_database_error(deployment_id, exc)
        countdown = DB_RETRY_S
    except Exception as exc:  # noqa: BLE001 - recorded on the row; the traceback goes to the log
        return run.fail(exc, "delete")
    finally:
        run.release()
    raise self.retry(countdown=countdown)
