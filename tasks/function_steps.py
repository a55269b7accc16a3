"""The deploy's first two steps: write the function, then wait until FC says it is ready.

function  create-or-update the function (redeploys update first, so the function keeps its identity)
wait      GetFunction until it is Active with no update InProgress. The task re-schedules itself
          between polls instead of sleeping, so no worker slot is held (bounded by the deploy
          deadline); the poll interval grows with the time waited (`ready_poll_delay`). An Inactive
          function is written again once to bring it back; a function that runs another spec than
          this deploy wrote (a late write landed after ours) gets ours again, at most MAX_CONVERGE times.
"""

from __future__ import annotations

import time
from typing import Any

from deployer.celery_app import WAITING_QUEUE
from deployer.errors import DeployError
from deployer.fc import spec
from deployer.fc.gateway import function_readiness
from deployer.ops.converge import function_drift
from deployer.settings import Settings
from tasks.build_steps import BuildSteps
from tasks.context import Reschedule, mask_result

MAX_CONVERGE = 3  # rewrites of a deploy's own spec after FC was seen running another one


def waiting_message(function_body: dict[str, Any], reason: str) -> str:
    """What a waiting deploy's event says about the function: its state, the update FC reports (a new
    function has none yet: no `update None`) and the reason code."""
    text = f"function {function_body.get('state') or 'state unknown'}"
    if function_body.get("lastUpdateStatus"):
        text += f", update {function_body['lastUpdateStatus']}"
    return f"{text}: {reason}" if reason else text


def ready_poll_delay(settings: Settings, polls: int, waited: float) -> float:
    """The wait before readiness check number `polls + 1`. It grows with the time already waited: a function
    that takes minutes to become Active is seen at most ~25 % late, and long waits cost few task runs."""
    return min(settings.ready_poll_max_s, max(settings.ready_poll_s * 1.5 ** (polls - 1), 0.25 * waited))


class FunctionSteps(BuildSteps):
    def function_step(self) -> bool:
        if self.checkpoint.function:
            return True
        self.run_.record_step(
            "creating_function", 10, f"{self.row.operation}: writing function {self.req.name}"
        )
        health = self.settings.fc_health_failure_threshold
        exists, package = False, None
        if self.req.image is None:
            exists, checksum = self.fc_code_checksum()
            package = self.code_package(checksum)
            self.check_layers(package.layers)
            if package.zip_base64 is None:
                self.run_.record_step("creating_function", 10, "FC has this code package: nothing to upload")
        create = spec.create_function_input(self.req, health_failures=health, package=package)
        update = spec.update_function_input(self.req, health_failures=health, package=package)
        self.gateway.take_uncertain()
        try:
            if self.row.operation in ("redeploy", "reconcile") or exists:
                response, how = self.gateway.update_or_create_function(create, update)
            else:
                response, how = self.gateway.create_or_update_function(create, update)
        finally:
            if self.gateway.take_uncertain():
                # A timed-out attempt may still land at FC after its retry: check FC again for a while.
                self.checkpoint.uncertain_at = round(time.time(), 3)
        self.checkpoint.function = True
        if how == "created":
            self.checkpoint.created = True
        self.result.function_result = mask_result(response, self.secret_keys)
        # In the result from here on (the product contract's shape): null until the trigger step.
        self.result.trigger_result = self.result.trigger_result
        self.run_.save(checkpoint=self.checkpoint, result=self.result, function_created=True)
        return True

    def wait_function(self) -> bool:
        """The wait step; False when a cancel was asked for meanwhile."""
        self.wait_step()
        return not self.cancel_requested()

    def wait_step(self) -> None:
        if self.checkpoint.ready:
            return
        body = self.gateway.get_function(self.req.name).get("body") or {}
        readiness, reason = function_readiness(body)
        if readiness == "failed":
            raise DeployError(
                f"function {self.req.name} did not start: {reason}",
                code="FunctionFailed",
                step="wait_function",
            )
        if readiness == "inactive" and not self.checkpoint.reactivated:
            self.reactivate(reason)
            readiness = "pending"
        if readiness in ("pending", "inactive"):
            self.keep_waiting(body, reason)
        drift = function_drift(self.req, body)
        if drift:
            self.converge(drift)
        self.checkpoint.ready = True
        self.checkpoint.waiting = False
        if self.checkpoint.trigger:  # otherwise the trigger step's first write records it
            self.run_.save(checkpoint=self.checkpoint)

    def reactivate(self, reason: str) -> None:
        """FC: an Inactive function cannot be invoked and returns to Pending only when it is redeployed
        or invoked, and there is no trigger to invoke yet. So write the same spec again, once per deploy,
        and keep waiting; if it stays Inactive the deploy deadline ends the wait. Recorded after the call,
        so a failed or lost update is sent again by the next run."""
        self.gateway.update_function(
            self.req.name,
            spec.update_function_input(
                self.req,
                health_failures=self.settings.fc_health_failure_threshold,
                package=self.code_package(with_code=False),
            ),
        )
        self.checkpoint.reactivated = True
        self.run_.record_step(
            "waiting_function",
            self.row.progress,
            f"function Inactive ({reason or 'not invocable'}): updated it to bring it back",
            checkpoint=self.checkpoint,
        )

    def keep_waiting(self, body: dict[str, Any], reason: str) -> None:
        """Poll again later (raises Reschedule): from the waiting queue once the wait is long."""
        polls = self.checkpoint.polls + 1
        self.checkpoint.polls, self.checkpoint.waiting = polls, True
        if self.checkpoint.wait_started is None:
            self.checkpoint.wait_started = round(time.time(), 3)
        started = float(self.checkpoint.wait_started)
        message = waiting_message(body, reason).strip()
        if message != self.checkpoint.wait_message:
            # An event only when something changed: thousands of waiting deploys stay cheap.
            self.checkpoint.wait_message = message
            self.run_.record_step(
                "waiting_function", min(60, 30 + 2 * polls), message, checkpoint=self.checkpoint
            )
        waited = time.time() - started
        queue = WAITING_QUEUE if waited >= self.settings.wait_queue_after_s else None
        raise Reschedule(ready_poll_delay(self.settings, polls, waited), queue)

    def converge(self, drift: list[str]) -> None:
        """FC runs another spec than this run wrote: a late write (an older attempt or an older deploy's
        timed-out call) landed after ours. Write ours again, then wait for it as before (raises Reschedule)."""
        count = self.checkpoint.converge + 1
        if count > MAX_CONVERGE:
            raise DeployError(
                f"FC keeps running another spec than this deploy's ({', '.join(drift)})",
                code="FunctionDrift",
                step="wait_function",
            )
        self.checkpoint.converge, self.checkpoint.function = count, False
        self.run_.record_step(
            "creating_function",
            20,
            f"FC runs another spec ({', '.join(drift)}): writing this deploy's again",
            checkpoint=self.checkpoint,
        )
        self.function_step()
        raise Reschedule(self.settings.ready_poll_s)
