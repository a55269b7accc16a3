"""The deploy task: an idempotent, checkpointed step machine.

    function  create-or-update the function (redeploys update first, so the function keeps its identity)
    wait      GetFunction until it is Active with no update InProgress (an Inactive one is updated once
              to bring it back); while waiting the task re-schedules itself instead of sleeping, so no
              worker slot is held (bounded by the deploy deadline)
    trigger   create-or-update the HTTP trigger (updated only if its config changed: the URL stays)
    probe     the official MCP client checks both eras through the trigger URL (initialize and 2026-07-28
              server/discover, then tools/list); result["probe"] keeps the protocols served and tool fingerprints
    done      result = {"function_result", "trigger_result"} as the SDK returned them, secrets masked

With releases (settings.releases_enabled, and not for a deployment whose trigger already serves LATEST,
docs/decisions.md "Safe releases") the steps after `wait` are instead:

    publish   PublishFunctionVersion N+1, marked "mcp-fc <id> release <N+1>" (a retry finds its own)
    verify    a short-lived trigger "verify" on version N+1 (same auth), probed with the MCP client; a
              failure ends the deployment `failed` at `verify` with `live` still on version N
    cutover   alias `live` → N+1 (created on the first release)
    trigger   the endpoint's trigger on qualifier `live` (its URL never changes across releases)
    cleanup   the verify trigger is removed

Each step records itself in the row's checkpoint before the next starts; a redelivered message skips
what is done. FC errors that are transient are retried by the gateway and then by re-scheduling; any
other error fails the deployment with the step and FC's code, keeping what was already made.

One module (~680 lines) on purpose: the steps are methods of one `DeploySteps` around one checkpoint that
every step reads and writes, so `run()` reads as the list above; the row's writes are deployer/store/lifecycle.py's.
"""

from __future__ import annotations

import contextvars
import threading
import time
from datetime import UTC, datetime
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import SQLAlchemyError

from deployer.celery_app import DEPLOY_TASK, WAITING_QUEUE
from deployer.errors import DeployError, FCError
from deployer.failure_text import scrub
from deployer.fc import spec
from deployer.fc.endpoint_auth import SigningKey, mint_token, new_signing_key
from deployer.fc.gateway import function_readiness
from deployer.ops import releases as release_state
from deployer.ops import token_expiry, tool_drift
from deployer.ops.converge import function_drift
from deployer.ops.probe import ProbeResult, probe
from deployer.settings import LOCAL_IMAGE, Settings
from deployer.store import reads as store
from deployer.store.db import session_scope
from deployer.store.lifecycle import Checkpoint
from deployer.store.tables import DeploymentRow
from schemas import AuthType, DeployRequest, Status, Transport, sse_deprecated
from schemas.limits import image_warnings
from tasks.app import app
from tasks.context import (
    DB_RETRY_S,
    LeasedTask,
    LeaseLost,
    Reschedule,
    Run,
    log,
    log_database_error,
    mask_result,
)
from tasks.verify import schedule_verify

MAX_TRANSIENT_RETRIES = 5
#: The key of the row's result that holds the last probe's summary (protocols served, tool fingerprints):
#: kept in the result JSON, next to the SDK results, so no migration is needed.
PROBE_KEY = "probe"
#: How often a running probe checks for a cancel.
CANCEL_POLL_S = 0.5
MAX_CONVERGE = 3  # rewrites of a deploy's own spec after FC was seen running another one


def waiting_message(function_body: dict[str, Any], reason: str) -> str:
    """What a waiting deploy's event says about the function: its state, the update FC reports (a new
    function has none yet: no `update None`) and the reason code."""
    text = f"function {function_body.get('state') or 'state unknown'}"
    if function_body.get("lastUpdateStatus"):
        text += f", update {function_body['lastUpdateStatus']}"
    return f"{text}: {reason}" if reason else text


class DeployTask(LeasedTask):
    expected = frozenset({Status.pending, Status.running})


@app.task(
    name=DEPLOY_TASK, base=DeployTask, bind=True, acks_late=True, max_retries=None, default_retry_delay=2
)
def deploy(self: DeployTask, deployment_id: str) -> dict[str, Any]:
    return self.leased(deployment_id, lambda run, row: DeploySteps(run, row).run())


def ready_poll_delay(settings: Settings, polls: int, waited: float) -> float:
    """The wait before readiness check number `polls + 1`. It grows with the time already waited: a function
    that takes minutes to become Active is seen at most ~25 % late, and long waits cost few task runs."""
    return min(settings.ready_poll_max_s, max(settings.ready_poll_s * 1.5 ** (polls - 1), 0.25 * waited))


class DeploySteps:
    def __init__(self, run: Run, row: DeploymentRow) -> None:
        self.run_ = run
        self.row = row
        self.settings = run.ctx.settings
        self.vault = run.ctx.vault
        self.checkpoint = Checkpoint.from_json(row.checkpoint)
        self.result: dict[str, Any] = dict(row.result or {})
        self.req: DeployRequest = store.request_of(self.vault, row)
        self.gateway = run.ctx.gateway_for(row.region or self.req.region)
        self.secret_keys = set(self.req.secret_env)
        # What this run wrote, kept so later steps need not read it back.
        self.urls: dict[str, Any] | None = None
        self.token: str | None = None

    def run(self) -> dict[str, Any]:
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
            if not run.start(
                f"{row.operation} started",
                stage="starting",
                progress=5,
                attempts=row.attempts + 1,
            ):
                return {"status": "superseded"}  # cancelled or replaced between load and start
            if self.req.transport == Transport.sse:
                run.record_step("starting", 5, f"warning: {sse_deprecated(self.req.name)}")
            if self.req.image != LOCAL_IMAGE:  # the local emulator's stand-in is pulled by nobody
                for warning in image_warnings(self.req.image):
                    run.record_step("starting", 5, f"warning: {warning}")
        elif not self.checkpoint.waiting:
            run.save(attempts=row.attempts + 1)  # a redelivery after a crash resumes here

        if row.operation == "rollback":
            return self.rollback()
        step = "function"
        try:
            run.check_lease()
            self.function_step()
            step = "wait_function"
            run.check_lease()
            self.wait_step()
            if self.cancel_requested():
                return self.cancel()
            if self.releases():
                step = "publish"
                run.check_lease()
                self.publish_step()
                step = "verify"
                run.check_lease()
                tools = self.verify_step()
                if tools is None:
                    return self.cancel()
                step = "cutover"
                run.check_lease()
                self.cutover_step()
                step = "trigger"
                run.check_lease()
                if not self.trigger_step(qualifier=spec.LIVE_ALIAS):
                    return self.cancel()
                step = "cleanup"
                self.remove_verify_trigger()
                self.retention_step()
            else:
                step = "trigger"
                run.check_lease()
                if not self.trigger_step() or self.cancel_requested():
                    return self.cancel()
                step = "probe"
                run.check_lease()
                tools = self.probe_step()
                if tools is None:
                    return self.cancel()
        except LeaseLost:
            raise
        except Reschedule as again:
            self.reschedule(again.countdown, again.queue)
        except SoftTimeLimitExceeded:
            self.reschedule(5)
        except SQLAlchemyError as exc:
            # The database (not FC, not the request) failed: try again later; the lease lapses by itself.
            log_database_error(row.id, exc)
            raise Reschedule(DB_RETRY_S) from None
        except FCError as exc:
            if exc.retryable:
                self.transient(exc, step)
            return run.fail(exc, step)
        except DeployError as exc:
            if step == "verify":
                return self.verify_failed(exc)
            if step == "probe" and self.settings.rollback_on_probe_failure and self.checkpoint.created:
                self.gateway.delete_function_and_triggers(self.req.name)
            return run.fail(exc, step)
        except Exception as exc:  # noqa: BLE001 - recorded on the row; the traceback goes to the log
            return run.fail(exc, step)

        # FC now runs this spec: an earlier drift report no longer holds (the next check looks again).
        self.result.pop("drift", None)
        self.record_token_expiry()
        done = run.succeed(
            "reconciled: FC runs the deployment's spec again" if row.operation == "reconcile" else "deployed",
            stage="done",
            progress=100,
            tools=tools,
            checkpoint=self.checkpoint,
            result=self.result,
            error=None,
        )
        if done and self.checkpoint.uncertain_at:
            schedule_verify(self.settings, row.id, float(self.checkpoint.uncertain_at))
        return {"status": "succeeded", "urls": self.row_urls(), "tools": tools}

    # -- steps ---------------------------------------------------------------------------------

    def function_step(self) -> None:
        if self.checkpoint.function:
            return
        self.run_.record_step(
            "creating_function", 10, f"{self.row.operation}: writing function {self.req.name}"
        )
        create, update = spec.create_function_input(self.req), spec.update_function_input(self.req)
        self.gateway.take_uncertain()
        try:
            if self.row.operation in ("redeploy", "reconcile"):
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
        self.result["function_result"] = mask_result(response, self.secret_keys)
        self.result.setdefault("trigger_result", None)
        self.run_.save(checkpoint=self.checkpoint, result=self.result, function_created=True)

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
            # FC: an Inactive function cannot be invoked and returns to Pending only when it is redeployed
            # or invoked, and there is no trigger to invoke yet. So write the same spec again, once per
            # deploy, and keep waiting; if it stays Inactive the deploy deadline ends the wait. Recorded after
            # the call, so a failed or lost update is sent again by the next run.
            self.gateway.update_function(self.req.name, spec.update_function_input(self.req))
            self.checkpoint.reactivated = True
            self.run_.record_step(
                "waiting_function",
                self.row.progress,
                f"function Inactive ({reason or 'not invocable'}): updated it to bring it back",
                checkpoint=self.checkpoint,
            )
            readiness = "pending"
        if readiness in ("pending", "inactive"):
            polls = self.checkpoint.polls + 1
            self.checkpoint.polls, self.checkpoint.waiting = polls, True
            if self.checkpoint.wait_started is None:
                self.checkpoint.wait_started = round(time.time(), 3)
            started = float(self.checkpoint.wait_started)
            message = waiting_message(body, reason)
            if message.strip() != self.checkpoint.wait_message:
                # An event only when something changed: thousands of waiting deploys stay cheap.
                self.checkpoint.wait_message = message.strip()
                self.run_.record_step(
                    "waiting_function", min(60, 30 + 2 * polls), message.strip(), checkpoint=self.checkpoint
                )
            waited = time.time() - started
            queue = WAITING_QUEUE if waited >= self.settings.wait_queue_after_s else None
            raise Reschedule(ready_poll_delay(self.settings, polls, waited), queue)
        drift = function_drift(self.req, body)
        if drift:
            # FC runs another spec than this run wrote: a late write (an older attempt or an older deploy's
            # timed-out call) landed after ours. Write ours again, then wait for it as before.
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
        self.checkpoint.ready = True
        self.checkpoint.waiting = False
        if self.checkpoint.trigger:  # otherwise the trigger step's first write records it
            self.run_.save(checkpoint=self.checkpoint)

    # -- releases ------------------------------------------------------------------------------

    def releases(self) -> bool:
        """Whether this deploy publishes and verifies a version. A deployment whose trigger serves LATEST
        (made before releases) stays on LATEST: no source says FC keeps a trigger's URL when its
        qualifier changes."""
        if not self.settings.releases_enabled:
            return False
        trigger = (self.result.get("trigger_result") or {}).get("body") or {}
        return trigger.get("qualifier") != spec.QUALIFIER

    def publish_step(self) -> None:
        if self.checkpoint.version:
            return
        release = self.checkpoint.release
        look_first = bool(release)  # an earlier run of this release may have published it already
        if not release:
            # Numbered before the call and saved with the checkpoint: a retry publishes (or finds) the same.
            release = int(self.result.get("release") or 0) + 1
            self.checkpoint.release = release
            self.result["release"] = release
            self.run_.save(checkpoint=self.checkpoint, result=self.result)
        self.run_.record_step("publishing", 65, f"publishing release {release} as a function version")
        response, how = self.gateway.publish_version_once(
            self.req.name, spec.release_marker(self.row.id, release), look_first=look_first
        )
        version = str((response.get("body") or {}).get("versionId"))
        self.checkpoint.version = version
        self.result["version_result"] = response
        self.record_release(
            version,
            release=release,
            image=self.req.image,
            command=list(self.req.command),
            env_keys=sorted({*self.req.env, *self.req.secret_env}),  # keys only, never values
            created=(response.get("body") or {}).get("createdTime"),
            probe=None,
            fingerprint=None,
        )
        self.run_.save(checkpoint=self.checkpoint, result=self.result)
        log.info("deploy.published", extra={"deployment_id": self.row.id, "version": version, "how": how})

    def live_version(self) -> str | None:
        return release_state.live_version(self.result)

    def verify_step(self) -> list[str] | None:
        """Probe version N+1 through its own trigger while `live` still serves version N (None when a
        cancel came during the probe)."""
        version = str(self.checkpoint.version)
        if self.checkpoint.verified:
            return list(self.checkpoint.tools or [])
        if not self.settings.probe_enabled:
            self.checkpoint.verified, self.checkpoint.tools = True, list(self.row.tools or [])
            return list(self.checkpoint.tools)
        self.run_.record_step(
            "verifying", 75, f"checking version {version} with an MCP client before it goes live"
        )
        auth = self.endpoint_auth()
        self.checkpoint.verify_trigger = True  # before the call: a lost answer still gets it removed
        response, _ = self.gateway.create_or_update_trigger(
            self.req.name,
            spec.create_trigger_input(self.req, auth, name=spec.VERIFY_TRIGGER_NAME, qualifier=version),
            spec.update_trigger_input(self.req, auth, qualifier=version),
        )
        http = (response.get("body") or {}).get("httpTrigger") or {}
        urls = spec.endpoint_urls(http.get("urlInternet"), http.get("urlIntranet"))
        url = urls.sse if self.req.transport == Transport.sse else urls.mcp
        if not url:
            raise DeployError(
                "the verify trigger has no internet URL to probe", code="ProbeFailed", step="verify"
            )
        try:
            found = self.interruptible_probe(url)
            if found is None:
                return None
        except DeployError as exc:
            self.record_release(version, probe={"ok": False, "error": str(exc)})
            raise
        self.record_release(
            version,
            probe={"ok": True, "tools": list(found.tools), "protocols": list(found.protocols)},
            fingerprint=found.fingerprint or None,
        )
        self.checkpoint.verified = self.checkpoint.probe = True
        self.checkpoint.tools = list(found.tools)
        live = self.live_version()
        self.record_probe(found, f"version {live}" if live else "the previous deploy", "verifying", 75)
        self.run_.save(checkpoint=self.checkpoint, result=self.result)
        return list(found.tools)

    def verify_failed(self, exc: DeployError) -> dict[str, Any]:
        """`live` stays where it was: say which version still serves, and remove the verify trigger."""
        version = self.checkpoint.version
        live = self.live_version()
        try:
            self.remove_verify_trigger()
        except FCError:
            pass  # the next deploy's verify step rewrites it
        serving = f"live still serves version {live}" if live else "nothing serves yet (first release)"
        err = DeployError(
            # The cause last: it ends with the server's own output, which users read first.
            f"version {version} failed verification, so traffic did not move ({serving}): {exc}",
            code=exc.code or "VerifyFailed",
            step="verify",
        )
        if self.settings.rollback_on_probe_failure and self.checkpoint.created and not live:
            self.gateway.delete_function_and_triggers(self.req.name)
        return self.run_.fail(err, "verify", result=self.result)

    def record_release(self, version: str, **fields: Any) -> None:
        """The deployment's release history (result.releases, newest last): what GET .../versions lists."""
        releases = [dict(r) for r in self.result.get("releases") or []]
        entry = next((r for r in releases if r.get("version") == version), None)
        if entry is None:
            entry = {"version": version}
            releases.append(entry)
        entry.update(fields)
        self.result["releases"] = releases

    def retention_step(self) -> None:
        """Keep the newest settings.releases_keep versions; delete older ones no alias points to."""
        keep = max(1, int(self.settings.releases_keep))
        live = self.live_version()
        releases = [r for r in self.result.get("releases") or [] if not r.get("deleted")]
        old = releases[:-keep] if len(releases) > keep else []
        changed = False
        for entry in old:
            if entry.get("version") == live:
                continue
            try:
                self.gateway.delete_version(self.req.name, str(entry["version"]))
            except FCError as exc:
                # FC refuses a version an alias or trigger still uses: keep it, try again next release.
                log.info("deploy.retention_kept", extra={"version": entry.get("version"), "code": exc.code})
                continue
            self.record_release(str(entry["version"]), deleted=True)
            changed = True
        if changed:
            self.run_.save(result=self.result)

    def rollback(self) -> dict[str, Any]:
        """Move `live` back to a published version (checkpoint.rollback_to, else the newest verified one
        older than live), after probing it through the verify trigger: one alias update."""
        run = self.run_
        if self.row.status == Status.pending:
            if not run.start("rollback started", stage="starting", progress=5):
                return {"status": "superseded"}
        target = self.checkpoint.rollback_to or self.rollback_target()
        step = "verify"
        try:
            if not target:
                raise DeployError(
                    "no earlier verified version to roll back to", code="NoVersion", step="verify"
                )
            self.checkpoint.version = str(target)
            run.check_lease()
            tools = self.verify_step()
            step = "cutover"
            run.check_lease()
            self.cutover_step()
            self.remove_verify_trigger()
        except LeaseLost:
            raise
        except Reschedule as again:
            self.reschedule(again.countdown, again.queue)
        except FCError as exc:
            if exc.retryable:
                self.transient(exc, step)
            return run.fail(exc, step)
        except DeployError as exc:
            return self.verify_failed(exc)
        run.succeed(
            f"rolled back: {spec.LIVE_ALIAS} serves version {target}",
            stage="done",
            progress=100,
            tools=tools,
            result=self.result,
            checkpoint=self.checkpoint,
            error=None,
        )
        return {"status": "succeeded", "version": target, "tools": tools}

    def rollback_target(self) -> str | None:
        return release_state.rollback_target(self.result)

    def cutover_step(self) -> None:
        if self.checkpoint.cutover:
            return
        version = str(self.checkpoint.version)
        self.run_.record_step("cutover", 85, f"moving {spec.LIVE_ALIAS} to version {version}")
        # Known live version: update first; none yet: create first (either falls back on the other).
        response, how = self.gateway.point_alias(
            self.req.name, spec.LIVE_ALIAS, version, exists=bool(self.live_version())
        )
        self.checkpoint.cutover = True
        self.result["alias_result"] = response
        self.run_.save(checkpoint=self.checkpoint, result=self.result)
        log.info("deploy.cutover", extra={"deployment_id": self.row.id, "version": version, "how": how})

    def remove_verify_trigger(self) -> None:
        if self.checkpoint.verify_removed or not self.checkpoint.verify_trigger:
            return
        self.gateway.delete_trigger(self.req.name, spec.VERIFY_TRIGGER_NAME)
        self.checkpoint.verify_removed = True

    def trigger_step(self, qualifier: str = spec.QUALIFIER) -> bool:
        """False, before any FC call, when a cancel was asked for (the step's first write answers the flag)."""
        if self.checkpoint.trigger:
            return True
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
        http = (response.get("body") or {}).get("httpTrigger") or {}
        urls = spec.endpoint_urls(http.get("urlInternet"), http.get("urlIntranet"))
        self.checkpoint.trigger = True
        self.result["trigger_result"] = response
        self.urls = urls.model_dump()
        self.run_.save(checkpoint=self.checkpoint, result=self.result, urls=self.urls)
        log.info("deploy.trigger", extra={"deployment_id": self.row.id, "how": how})
        return True

    def probe_step(self) -> list[str] | None:
        """The endpoint's tools, or None when a cancel came during the probe."""
        if not self.settings.probe_enabled:
            return list(self.row.tools or [])
        self.run_.record_step("probing", 85, "checking the endpoint with an MCP client")
        urls = self.row_urls()
        url = urls.get("sse") if self.req.transport == Transport.sse else urls.get("mcp")
        if not url:
            raise DeployError("the trigger has no internet URL to probe", code="ProbeFailed", step="probe")
        found = self.interruptible_probe(url)
        if found is None:
            return None
        self.checkpoint.probe = True
        self.record_probe(found, "the previous deploy", "probing", 85)
        self.run_.save(checkpoint=self.checkpoint, result=self.result)
        return found.tools

    def record_probe(self, found: ProbeResult, against: str, stage: str, progress: int) -> None:
        """result.probe (what the scheduled health checks compare with) and result.tool_changes: this
        release's tools against the previous release's probe, with an event when they differ."""
        previous = self.result.get(PROBE_KEY)
        self.result[PROBE_KEY] = found.summary()
        changes, message = tool_drift.release_changes(
            previous,
            self.result[PROBE_KEY],
            against=against,
            task_id=self.run_.task_id,
            now=datetime.now(UTC),
        )
        self.result[tool_drift.CHANGES_KEY] = changes
        if message:
            self.run_.record_step(stage, progress, message)

    # -- helpers -------------------------------------------------------------------------------

    def interruptible_probe(self, url: str) -> ProbeResult | None:
        """The probe, with the endpoint's token, in a thread, the cancel flag read from the database every
        CANCEL_POLL_S meanwhile: a cancel during a probe (up to MCPFC_PROBE_TIMEOUT_S) stops the deploy at
        once (None). The abandoned probe ends by its own timeout; cancel() removes what it talks to."""
        token = self.endpoint_token()
        headers = {"Authorization": f"Bearer {token}"} if token else None
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["found"] = probe(
                    url,
                    transport=self.req.transport.value,
                    headers=headers,
                    timeout=self.settings.probe_timeout_s,
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the deploy's thread below
                outcome["error"] = exc

        # The probe's own log records (the MCP client, httpx) name the deployment too: the run's context.
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(run,), name=f"probe-{self.row.id}", daemon=True)
        thread.start()
        while True:
            thread.join(CANCEL_POLL_S)
            if not thread.is_alive():
                break
            with session_scope(self.settings) as session:
                row = store.get(session, self.row.id)
                if row is None or row.cancel_requested or row.task_id != self.run_.task_id:
                    return None
        error = outcome.get("error")
        if isinstance(error, DeployError):
            # The answer may carry the server's own output, which may print its environment.
            error.message = scrub(error.message, (v.get_secret_value() for v in self.req.secret_env.values()))
            error.args = (error.message,)
        if error is not None:
            raise error
        return outcome["found"]

    def row_urls(self) -> dict[str, Any]:
        if self.urls is not None:
            return dict(self.urls)
        with session_scope(self.settings) as session:
            row = store.get(session, self.row.id)
            return dict(row.urls or {}) if row else {}

    def endpoint_auth(self) -> spec.EndpointAuth:
        """The trigger's credentials. A deployment keeps its signing key across redeploys."""
        if self.req.auth.type != AuthType.jwt:
            return spec.EndpointAuth()
        with session_scope(self.settings) as session:
            row = store.get(session, self.row.id)
            assert row is not None
            key_enc, token_enc = row.endpoint_key_enc, row.endpoint_token_enc
        if key_enc:
            key = SigningKey.from_json(self.vault.decrypt(key_enc))
            self.token = self.vault.decrypt(token_enc) if token_enc else None
            return spec.EndpointAuth(jwks=key.jwks())
        key = new_signing_key()  # CPU-heavy (RSA): not while holding a database connection
        self.token = mint_token(
            key,
            subject=f"{self.row.owner_id}/{self.row.name}",
            ttl_s=int(self.settings.endpoint_token_ttl_days * 86400),
        )
        if not self.run_.save(
            endpoint_key_enc=self.vault.encrypt(key.to_json()),
            endpoint_token_enc=self.vault.encrypt(self.token),
        ):
            raise LeaseLost()
        return spec.EndpointAuth(jwks=key.jwks())

    def endpoint_token(self) -> str | None:
        if self.req.auth.type != AuthType.jwt:
            return None
        if self.token is not None:
            return self.token
        with session_scope(self.settings) as session:
            row = store.get(session, self.row.id)
            return self.vault.decrypt(row.endpoint_token_enc) if row and row.endpoint_token_enc else None

    def record_token_expiry(self) -> None:
        """The endpoint token's expiry on the row (`token`), so `status` shows it from the first deploy on
        (a rotation mints a new token: its new date replaces the old one here)."""
        token = self.endpoint_token()
        expiry = token_expiry.expires_at(token) if token else None
        if expiry is None:
            self.result.pop("token", None)
            return
        previous = self.result.get("token") or {}
        status = token_expiry.status(expiry, self.settings.token_expiry_warn_days)
        if previous.get("warned_at") and previous.get("expires_at") == status["expires_at"]:
            status["warned_at"] = previous["warned_at"]  # the same token: its expiry event was written
        self.result["token"] = status

    def reschedule(self, countdown: float, queue: str | None = None) -> None:
        """Record when the next run is due (recovery leaves the row alone until then), then re-schedule."""
        self.run_.reschedule_in(self.checkpoint, countdown, queue)

    def transient(self, exc: FCError, step: str) -> None:
        """FC kept failing transiently past the gateway's retries: try again later, a bounded number of times."""
        count = self.checkpoint.transient + 1
        if count > MAX_TRANSIENT_RETRIES:
            return
        self.checkpoint.transient = count
        self.run_.record_step(
            self.row.stage or step,
            self.row.progress,
            f"{step}: {exc.code}, retrying",
            checkpoint=self.checkpoint,
        )
        self.reschedule(min(60, 2**count))

    def cancel_requested(self) -> bool:
        """Between steps. This run's last write (or read) answered the flag, at most one FC call ago; only
        when that write matched no row (superseded, or the lease is gone) is the row read again."""
        if self.run_.cancel_flag is not None:
            return self.run_.cancel_flag
        with session_scope(self.settings) as session:
            row = store.get(session, self.row.id)
            return bool(row is None or row.cancel_requested or row.task_id != self.run_.task_id)

    def cancel(self) -> dict[str, Any]:
        """Stop here. A first deploy that created the function removes it again. A redeploy leaves FC as it
        is and says what FC now runs: cancelled before its function step, the previous spec (put back on the
        row); after it, this redeploy's spec (FC has it, the row keeps it)."""
        if self.checkpoint.created and self.row.operation == "deploy":
            self.gateway.delete_function_and_triggers(self.req.name)
        fields: dict[str, Any] = {}
        message = "cancelled"
        if self.row.operation == "redeploy":
            restore = self.checkpoint.restore_fields()
            if self.checkpoint.function:
                message = (
                    f"cancelled after FC was updated: FC runs this redeploy's spec (image {self.req.image})"
                )
            elif restore:
                fields = restore
                image = (restore["spec"] or {}).get("image")
                message = f"cancelled before FC was changed: FC still runs the previous spec (image {image})"
        self.run_.cancel(message, **fields)
        return {"status": "cancelled"}
