"""The delete task: the trigger first, then the function (FC refuses with FunctionNotEmpty otherwise).

Deleting what is already gone counts as done, so a redelivered or repeated delete converges.
"""

from __future__ import annotations

from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import SQLAlchemyError

from deployer.celery_app import DELETE_TASK
from deployer.errors import FCError
from deployer.store.checkpoint import Checkpoint
from deployer.store.tables import DeploymentRow
from schemas import Status
from tasks.app import app
from tasks.context import LeasedTask, LeaseLost, Reschedule, Run, Superseded

MAX_TRANSIENT_RETRIES = 5


class DeleteTask(LeasedTask):
    expected = frozenset({Status.deleting})


@app.task(
    name=DELETE_TASK, base=DeleteTask, bind=True, acks_late=True, max_retries=None, default_retry_delay=2
)
def delete(self: DeleteTask, deployment_id: str) -> dict[str, Any]:
    return self.leased(deployment_id, delete_steps)


def delete_steps(run: Run, row: DeploymentRow) -> dict[str, Any]:
    checkpoint = Checkpoint.from_json(row.checkpoint)
    try:
        run.record_step("deleting", 30, f"deleting trigger and function {row.name}")
        run.check_lease()
        run.ctx.gateway_for(row.region).delete_function_and_triggers(row.name)
        run.succeed("deleted", status=Status.deleted, stage="deleted", progress=100, urls={})
        return {"status": "deleted"}
    except SoftTimeLimitExceeded:
        countdown = 5
    except FCError as exc:
        count = checkpoint.transient + 1
        if not exc.retryable or count > MAX_TRANSIENT_RETRIES:
            return run.fail(exc, "delete")
        checkpoint.transient = count
        countdown = min(60, 2**count)
    except (Superseded, LeaseLost, Reschedule, SQLAlchemyError):
        raise  # LeasedTask's: deleting is idempotent, the next run does it again
    except Exception as exc:  # noqa: BLE001 - recorded on the row; the traceback goes to the log
        return run.fail(exc, "delete")
    run.reschedule_in(checkpoint, countdown)
