"""One deploy run's state, and what every step of it uses (tasks/deploy.py has the steps' map).

`DeployRun` holds the row, its typed checkpoint and result, the request and the region's gateway, and gives
the steps what they share: the endpoint's credentials (a deployment keeps its signing key across
redeploys), the MCP probe run so that a cancel stops it, the probe's record in the result, and
re-scheduling (a transient FC failure, a wait). The steps are its subclasses: tasks/function_steps.py,
tasks/release_steps.py, and tasks/deploy.py's `DeploySteps`, which runs them.
"""

from __future__ import annotations

import contextvars
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deployer.errors import DeployError, FCError
from deployer.failure_text import scrub
from deployer.fc import spec
from deployer.fc.endpoint_auth import SigningKey, mint_token, new_signing_key
from deployer.ops import token_expiry, tool_drift
from deployer.store import reads as store
from deployer.store.checkpoint import Checkpoint
from deployer.store.db import session_scope
from deployer.store.result import DeploymentResult
from deployer.store.tables import DeploymentRow
from schemas import AuthType, DeployRequest
from tasks.context import LeaseLost, Run

if TYPE_CHECKING:  # the MCP client costs ~1 s of imports: loaded when a probe runs (tasks/startup.py)
    from deployer.ops.probe import ProbeResult

MAX_TRANSIENT_RETRIES = 5
#: How often a running probe checks for a cancel.
CANCEL_POLL_S = 0.5


class DeployRun:
    def __init__(self, run: Run, row: DeploymentRow) -> None:
        self.run_ = run
        self.row = row
        self.settings = run.ctx.settings
        self.vault = run.ctx.vault
        self.checkpoint = Checkpoint.from_json(row.checkpoint)
        self.result = DeploymentResult.from_json(row.result)
        self.req: DeployRequest = store.request_of(self.vault, row)
        self.gateway = run.ctx.gateway_for(row.region or self.req.region)
        self.secret_keys = set(self.req.secret_env)
        # What this run wrote, kept so later steps need not read it back.
        self.urls: dict[str, Any] | None = None
        self.token: str | None = None
        self.tools: list[str] | None = None  # what the verify or probe step found
        self.reconciled: list[str] = []  # what a reconcile wrote again (deployer/ops/unchanged.py)

    # -- the probe -------------------------------------------------------------------------------

    def interruptible_probe(self, url: str) -> ProbeResult | None:
        """The probe, with the endpoint's token, in a thread, the cancel flag read from the database every
        CANCEL_POLL_S meanwhile: a cancel during a probe (up to MCPFC_PROBE_TIMEOUT_S) stops the deploy at
        once (None). The abandoned probe ends by its own timeout; cancel() removes what it talks to."""
        token = self.endpoint_token()
        headers = {"Authorization": f"Bearer {token}"} if token else None
        outcome: dict[str, Any] = {}

        from deployer.ops.probe import probe

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

    def record_probe(self, found: ProbeResult, against: str, stage: str, progress: int) -> None:
        """result.probe (what the scheduled health checks compare with) and result.tool_changes: this
        release's tools against the previous release's probe, with an event when they differ."""
        previous = self.result.probe
        self.result.probe = found.summary()
        changes, message = tool_drift.release_changes(
            previous,
            self.result.probe,
            against=against,
            task_id=self.run_.task_id,
            now=datetime.now(UTC),
        )
        self.result.tool_changes = changes
        if message:
            self.run_.record_step(stage, progress, message)

    def row_urls(self) -> dict[str, Any]:
        if self.urls is not None:
            return dict(self.urls)
        with session_scope(self.settings) as session:
            row = store.get(session, self.row.id)
            return dict(row.urls or {}) if row else {}

    # -- the endpoint's credentials --------------------------------------------------------------

    def endpoint_auth(self) -> spec.EndpointAuth:
        """The trigger's credentials. A deployment keeps its signing key across redeploys."""
        if self.req.auth.type != AuthType.jwt:
            return spec.EndpointAuth()
        with session_scope(self.settings) as session:
            row = store.get(session, self.row.id)
            assert row is not None
            key_enc, token_enc = row.endpoint_key_enc, row.endpoint_token_enc
        rotating = self.checkpoint.rotate and not self.checkpoint.rotated
        if key_enc and not rotating:
            key = SigningKey.from_json(self.vault.decrypt(key_enc))
            self.token = self.vault.decrypt(token_enc) if token_enc else None
            return spec.EndpointAuth(jwks=key.jwks())
        key = new_signing_key()  # CPU-heavy (RSA): not while holding a database connection
        self.token = mint_token(
            key,
            subject=f"{self.row.owner_id}/{self.row.name}",
            ttl_s=int(self.settings.endpoint_token_ttl_days * 86400),
        )
        # A rotation keeps the old key until this moment (a cancel before it leaves the old token working);
        # the new one is saved with `rotated` before the trigger is written, so a re-run writes the same.
        self.checkpoint.rotated = self.checkpoint.rotate
        if not self.run_.save(
            endpoint_key_enc=self.vault.encrypt(key.to_json()),
            endpoint_token_enc=self.vault.encrypt(self.token),
            checkpoint=self.checkpoint,
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
            self.result.discard("token")
            return
        status = token_expiry.status(expiry, self.settings.token_expiry_warn_days)
        warned = self.result.token_warned_at(status["expires_at"])
        if warned:
            status["warned_at"] = warned  # the same token: its expiry event was written
        self.result.token = status

    # -- re-scheduling and cancels ---------------------------------------------------------------

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
