"""The deploy task: an idempotent, checkpointed step machine.

    function  create-or-update the function (redeploys update first, so the function keeps its identity)
    wait      GetFunction until it is Active with no update InProgress (an Inactive one is updated once
              to bring it back); while waiting the task re-schedules itself instead of sleeping, so no
              worker slot is held (bounded by the deploy deadline)
    trigger   create-or-update the HTTP trigger (updated only if its config changed: the URL stays)
    probe     the official MCP client checks both eras through the trigger URL (initialize and 2026-07-28
              server/discover, then tools/list); result.probe keeps the protocols served and tool fingerprints
    done      result = {"function_result", "trigger_result"} as the SDK returned them, secrets masked

With releases (settings.releases_enabled, and not for a deployment whose trigger already serves LATEST,
docs/decisions.md "Safe releases") the steps after `wait` are publish, verify, cutover, trigger (on the
alias `live`) and cleanup; a rollback is verify and cutover to an earlier version.

Each step records itself in the row's checkpoint before the next starts; a redelivered message skips
what is done. FC errors that are transient are retried by the gateway and then by re-scheduling; any
other error fails the deployment with the step and FC's code, keeping what was already made.

Where things are: `DeploySteps` (here) runs a table of (step, method) rows, checking the lease before
each, and maps every error to how the run ends (`failure`); the trigger and probe steps and the cancel
are here too. The function and wait steps are tasks/function_steps.py's, the release steps
tasks/release_steps.py's, the state they share and the endpoint's credentials tasks/deploy_run.py's;
the row's writes are deployer/store/lifecycle.py's and run_writes.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import SQLAlchemyError

from deployer.celery_app import DEPLOY_TASK
from deployer.errors import DeployError, FCError
from deployer.fc import spec
from deployer.ops import unchanged
from deployer.settings import LOCAL_IMAGE
from schemas import Status, Transport, sse_deprecated
from schemas.limits import image_warnings
from tasks import drift as drift_check
from tasks.app import app
from tasks.context import (
    DB_RETRY_S,
    LeasedTask,
    LeaseLost,
    Reschedule,
    log,
    log_database_error,
)
from tasks.function_steps import FunctionSteps, ready_poll_delay, waiting_message
from tasks.release_steps import ReleaseSteps
from tasks.verify import schedule_verify

#: One row of a run's table: the step's name (the row's `stage` on failure) and the method that does it,
#: answering whether the run goes on (False: a cancel was asked for, the run stops cancelled).
Step = tuple[str, Callable[[], bool]]

__all__ = ["DeploySteps", "DeployTask", "deploy", "ready_poll_delay", "waiting_message"]


class DeployTask(LeasedTask):
    expected = frozenset({Status.pending, Status.running})


@app.task(
    name=DEPLOY_TASK, base=DeployTask, bind=True, acks_late=True, max_retries=None, default_retry_delay=2
)
def deploy(self: DeployTask, deployment_id: str) -> dict[str, Any]:
    return self.leased(deployment_id, lambda run, row: DeploySteps(run, row).run())


class DeploySteps(FunctionSteps, ReleaseSteps):
    def run(self) -> dict[str, Any]:
        ended = self.begin()
        if ended is not None:
            return ended
        operation = self.row.operation
        if operation == "rollback":
            return self.rollback()
        if operation == "rotate":
            steps = self.rotate_steps()
        elif operation == "reconcile":
            steps = self.reconcile_steps()
        else:
            steps = self.deploy_steps()
        ended = self.run_steps(steps)
        return ended if ended is not None else self.deployed()

    def begin(self) -> dict[str, Any] | None:
        """Before any step: a cancel or the deadline ends the run; a pending deployment starts (with its
        warnings); a redelivery counts an attempt. None: the steps go on."""
        row, run = self.row, self.run_
        if row.cancel_requested:
            return self.cancel()
        if run.past_deadline(row):
            err = DeployError(
                f"not done within {self.settings.deploy_deadline_s:.0f} s (last stage: {row.stage})",
                code="DeadlineExceeded",
            )
            return run.fail(err, row.stage or "deploy")
        if row.status == Status.pending:
            started = run.start(
                f"{row.operation} started", stage="starting", progress=5, attempts=row.attempts + 1
            )
            if not started:
                return {"status": "superseded"}  # cancelled or replaced between load and start
            for warning in self.warnings():
                run.record_step("starting", 5, f"warning: {warning}")
        elif not self.checkpoint.waiting:
            run.save(attempts=row.attempts + 1)  # a redelivery after a crash resumes here
        return None

    def warnings(self) -> list[str]:
        if self.row.operation not in ("deploy", "redeploy"):
            return []  # the spec's warnings were said when it was deployed
        found = [sse_deprecated(self.req.name)] if self.req.transport == Transport.sse else []
        if self.req.image != LOCAL_IMAGE:  # the local emulator's stand-in is pulled by nobody
            found += image_warnings(self.req.image)
        return found

    # -- the tables ------------------------------------------------------------------------------

    def deploy_steps(self) -> list[Step]:
        """The module docstring's list: a deploy, redeploy or reconcile, with or without releases."""
        steps: list[Step] = [("function", self.function_step), ("wait_function", self.wait_function)]
        if self.releases():
            return [
                *steps,
                ("publish", self.publish_step),
                ("verify", self.verify_step),
                ("cutover", self.cutover_step),
                ("trigger", lambda: self.trigger_step(qualifier=spec.LIVE_ALIAS)),
                ("cleanup", self.cleanup_step),
            ]
        return [*steps, ("trigger", self.endpoint_trigger_step), ("probe", self.probe_step)]

    def rotate_steps(self) -> list[Step]:
        """A token rotation (issue 26 #1): the endpoint's trigger alone gets the new key (FC's UpdateTrigger
        takes `triggerConfig` on its own), then the endpoint is probed with the new token. No function
        write and no version: `live` keeps serving what it served."""
        qualifier = self.result.trigger_qualifier or spec.QUALIFIER
        return [
            ("trigger", lambda: self.trigger_step(qualifier=qualifier, progress=40)),
            ("probe", self.probe_step),
        ]

    def reconcile_steps(self) -> list[Step]:
        """Write again only what FC shows drifted (deployer/ops/unchanged.py `reconcile_plan`); nothing
        when nothing drifted. With releases never a version: `live` keeps serving what it served (a
        rollback stays rolled back); its alias is pointed back at the version the deployment records."""
        plan: set[str] = set()

        def observe() -> bool:
            if self.checkpoint.reconcile is None:  # looked once per run: a re-run finishes that plan
                found = unchanged.reconcile_plan(drift_check.observe(self.run_.ctx, self.row))
                self.checkpoint.reconcile = sorted(found)
                self.run_.save(checkpoint=self.checkpoint)
            plan.update(self.checkpoint.reconcile)
            self.reconciled = sorted(plan)
            return True

        def when(kind: str, method: Callable[[], bool]) -> Callable[[], bool]:
            return lambda: method() if kind in plan else True

        if not self.releases():  # the trigger serves LATEST: any drift gets the whole spec written again
            return [
                ("drift", observe),
                ("function", lambda: not plan or self.function_step()),
                ("wait_function", lambda: not plan or self.wait_function()),
                ("trigger", lambda: not plan or self.endpoint_trigger_step()),
                ("probe", lambda: not plan or self.probe_step()),
            ]
        return [
            ("drift", observe),
            ("function", when(unchanged.FUNCTION, self.function_step)),
            ("wait_function", when(unchanged.FUNCTION, self.wait_function)),
            ("cutover", when(unchanged.ALIAS, self.restore_alias)),
            ("trigger", when(unchanged.TRIGGER, lambda: self.trigger_step(qualifier=spec.LIVE_ALIAS))),
            ("probe", lambda: self.probe_step() if plan & {unchanged.TRIGGER, unchanged.ALIAS} else True),
        ]

    def restore_alias(self) -> bool:
        """`live` back to the version the deployment records (someone moved it in the FC console)."""
        live = self.live_version()
        if live:
            self.checkpoint.version = live
            self.cutover_step()
        return True

    def rollback_steps(self, target: str | None) -> list[Step]:
        def verify() -> bool:
            if not target:
                raise DeployError(
                    "no earlier verified version to roll back to", code="NoVersion", step="verify"
                )
            self.checkpoint.version = str(target)
            return self.verify_step()  # False: a cancel came during the probe, `live` did not move

        def cutover() -> bool:
            self.cutover_step()
            self.remove_verify_trigger()
            return True

        return [("verify", verify), ("cutover", cutover)]

    def run_steps(self, steps: list[Step]) -> dict[str, Any] | None:
        """Each step in turn, the lease checked before each. None when all went through; else how the run
        ended (cancelled, failed). A re-schedule or a lost lease raises."""
        for step, method in steps:
            try:
                self.run_.check_lease()
                if not method():
                    return self.cancel()
            except LeaseLost:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped by failure(); an unexpected one is logged there
                return self.failure(exc, step)
        return None

    def failure(self, exc: Exception, step: str) -> dict[str, Any]:
        """How an error at `step` ends a run: re-scheduled (raises Reschedule), or failed with the step and
        the error's code. A failed verify says which version still serves; a failed probe of a function this
        deploy created removes it (settings.rollback_on_probe_failure)."""
        if isinstance(exc, Reschedule):
            self.reschedule(exc.countdown, exc.queue)
        if isinstance(exc, SoftTimeLimitExceeded):
            self.reschedule(5)
        if isinstance(exc, SQLAlchemyError):
            # The database (not FC, not the request) failed: try again later; the lease lapses by itself.
            log_database_error(self.row.id, exc)
            raise Reschedule(DB_RETRY_S) from None
        if isinstance(exc, FCError) and exc.retryable:
            self.transient(exc, step)  # re-schedules, a bounded number of times
        if isinstance(exc, DeployError) and step == "verify":
            return self.verify_failed(exc)
        if isinstance(exc, DeployError) and step == "probe":
            if self.settings.rollback_on_probe_failure and self.checkpoint.created:
                self.gateway.delete_function_and_triggers(self.req.name)
        return self.run_.fail(exc, step)

    # -- how a run ends well ---------------------------------------------------------------------

    def deployed(self) -> dict[str, Any]:
        # FC now runs this spec: an earlier drift report no longer holds (the next check looks again).
        self.result.discard("drift")
        self.record_token_expiry()
        if self.tools is None:  # a reconcile that probed nothing: the endpoint's tools are what they were
            self.tools = list(self.row.tools or [])
        done = self.run_.succeed(
            self.done_message(),
            stage="done",
            progress=100,
            tools=self.tools,
            checkpoint=self.checkpoint,
            result=self.result,
            error=None,
        )
        if done and self.checkpoint.uncertain_at:
            schedule_verify(self.settings, self.row.id, float(self.checkpoint.uncertain_at))
        return {"status": "succeeded", "urls": self.row_urls(), "tools": self.tools}

    def done_message(self) -> str:
        """The last event of a run that went well: what it did, and for the operations that release
        nothing, that `live` did not move."""
        live = self.live_version()
        serving = f"{spec.LIVE_ALIAS} still serves version {live}" if live and self.releases() else ""
        operation = self.row.operation
        if operation == "rotate":
            return "token rotated: the trigger has a new signing key, no new release" + (
                f" ({serving})" if serving else ""
            )
        if operation != "reconcile":
            return "deployed"
        if not self.reconciled:
            return "nothing to reconcile: FC runs the deployment's spec, no new release" + (
                f" ({serving})" if serving else ""
            )
        what = ", ".join(self.reconciled)
        return f"reconciled ({what}): FC runs the deployment's spec again, no new release" + (
            f" ({serving})" if serving else ""
        )

    def rollback(self) -> dict[str, Any]:
        """Move `live` back to a published version (checkpoint.rollback_to, else the newest verified one
        older than live), after probing it through the verify trigger: one alias update. begin() started
        the run (one `rollback started` event)."""
        target = self.checkpoint.rollback_to or self.rollback_target()
        ended = self.run_steps(self.rollback_steps(target))
        if ended is not None:
            return ended
        self.run_.succeed(
            f"rolled back: {spec.LIVE_ALIAS} serves version {target}",
            stage="done",
            progress=100,
            tools=self.tools,
            result=self.result,
            checkpoint=self.checkpoint,
            error=None,
        )
        return {"status": "succeeded", "version": target, "tools": self.tools}

    # -- the endpoint ----------------------------------------------------------------------------

    def endpoint_trigger_step(self) -> bool:
        return self.trigger_step() and not self.cancel_requested()

    def trigger_step(self, qualifier: str = spec.QUALIFIER, progress: int | None = None) -> bool:
        """False, before any FC call, when a cancel was asked for (the step's first write answers the flag)."""
        if self.checkpoint.trigger:
            return True
        if progress is None:
            # A release's trigger comes after its cutover (85): progress never goes back.
            progress = 70 if qualifier == spec.QUALIFIER else 90
        self.run_.record_step(
            "creating_trigger", progress, "writing the HTTP trigger", checkpoint=self.checkpoint
        )
        if self.cancel_requested():
            return False
        auth = self.endpoint_auth()
        response, how = self.gateway.create_or_update_trigger(
            self.req.name,
            spec.create_trigger_input(self.req, auth, qualifier=qualifier),
            spec.update_trigger_input(self.req, auth, qualifier=qualifier),
        )
        self.checkpoint.trigger = True
        self.result.trigger_result = response
        self.urls = spec.trigger_urls(response).model_dump()
        self.run_.save(checkpoint=self.checkpoint, result=self.result, urls=self.urls)
        log.info("deploy.trigger", extra={"deployment_id": self.row.id, "how": how})
        return True

    def probe_step(self) -> bool:
        """The endpoint's tools into self.tools; False when a cancel came during the probe."""
        if not self.settings.probe_enabled:
            self.tools = list(self.row.tools or [])
            return True
        self.run_.record_step("probing", 85, "checking the endpoint with an MCP client")
        urls = self.row_urls()
        url = urls.get("sse") if self.req.transport == Transport.sse else urls.get("mcp")
        if not url:
            raise DeployError("the trigger has no internet URL to probe", code="ProbeFailed", step="probe")
        found = self.interruptible_probe(url)
        if found is None:
            return False
        self.checkpoint.probe = True
        self.record_probe(found, "the previous deploy", "probing", 85)
        self.run_.save(checkpoint=self.checkpoint, result=self.result)
        self.tools = found.tools
        return True

    def cancel(self) -> dict[str, Any]:
        """Stop here. A first deploy that created the function removes it again. A redeploy leaves FC as it
        is and says what FC now runs: cancelled before its function step, the previous spec (put back on the
        row); after it, this redeploy's spec (FC has it, the row keeps it)."""
        if self.checkpoint.created and self.row.operation == "deploy":
            self.gateway.delete_function_and_triggers(self.req.name)
        fields: dict[str, Any] = {}
        message = "cancelled"
        if self.row.operation == "rollback":
            self.remove_verify_trigger()
            message = f"cancelled: {spec.LIVE_ALIAS} did not move (it serves version {self.live_version()})"
        if self.row.operation == "rotate":
            message = (
                "cancelled after the trigger got the new key: earlier tokens no longer work"
                if self.checkpoint.trigger
                else "cancelled before the trigger changed: the current token still works"
            )
        if self.row.operation == "redeploy":
            restore = self.checkpoint.restore_fields()
            if self.checkpoint.function:
                message = (
                    f"cancelled after FC was updated: FC runs this redeploy's spec (image {self.req.image})"
                )
            elif restore:
                fields = restore
                image = restore["spec"].get("image")
                message = f"cancelled before FC was changed: FC still runs the previous spec (image {image})"
        self.run_.cancel(message, **fields)
        return {"status": "cancelled"}
