"""/v1/tasks/{task_id}: Celery's view of a deployment's current task, as Flask's Celery example shows it."""

from __future__ import annotations

import logging
from typing import Annotated

from celery.result import AsyncResult
from celery.states import READY_STATES, SUCCESS
from fastapi import APIRouter, Path

from deployer.api.deps import CurrentOwner, ProducerDep, SessionDep
from deployer.api.problems import Problem, ProblemDetail
from deployer.store import reads as store
from schemas import TaskView

log = logging.getLogger("deployer.api")

router = APIRouter(tags=["tasks"])


@router.get(
    "/v1/tasks/{task_id}",
    response_model=TaskView,
    responses={
        404: {"model": ProblemDetail},
        503: {"model": ProblemDetail, "description": "result backend down"},
    },
)
def read_task(
    task_id: Annotated[str, Path(max_length=64)],
    owner: CurrentOwner,
    session: SessionDep,
    producer: ProducerDep,
) -> TaskView:
    """State of the current task of one of this key's deployments. A failure shows its exception type only."""
    if not store.task_owned_by(session, owner.owner_id, task_id):
        raise Problem(404, f"no task {task_id!r}", kind="not-found")
    result = AsyncResult(task_id, app=producer)
    try:
        state = result.state
        ready = state in READY_STATES
        outcome = result.result if ready else None
    except Exception as exc:
        log.warning("result backend unreachable for task %r: %s", task_id, type(exc).__name__)
        raise Problem(503, "the result backend is unreachable", kind="backend-unavailable") from None
    successful = (state == SUCCESS) if ready else None
    if successful:
        value = outcome
    elif isinstance(outcome, BaseException):
        value = type(outcome).__name__  # never the message: it may carry anything
    else:
        value = None
    return TaskView(task_id=task_id, state=state, ready=ready, successful=successful, value=value)
