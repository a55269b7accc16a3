"""The steps of a release (settings.releases_enabled; docs/decisions.md "Safe releases"), after `wait`:

    publish   PublishFunctionVersion N+1, marked "mcp-fc <id> release <N+1>" (a retry finds its own)
    verify    a short-lived trigger "verify" on version N+1 (same auth), probed with the MCP client; a
              failure ends the deployment `failed` at `verify` with `live` still on version N
    cutover   alias `live` → N+1 (created on the first release)
    trigger   the endpoint's trigger on qualifier `live` (tasks/deploy.py; its URL never changes)
    cleanup   the verify trigger is removed; versions that failed verification, and good ones past the
              newest settings.releases_keep good ones, are deleted (never `live`)

A rollback is verify and cutover to an earlier verified version. The release history is the result's
`releases` (deployer/store/result.py), what GET .../versions lists.
"""

from __future__ import annotations

from typing import Any

from deployer.errors import DeployError, FCError
from deployer.fc import spec
from deployer.ops import releases as release_facts
from schemas import Transport
from tasks.context import log
from tasks.deploy_run import DeployRun


class ReleaseSteps(DeployRun):
    def releases(self) -> bool:
        """Whether this deploy publishes and verifies a version. A deployment whose trigger serves LATEST
        (made before releases) stays on LATEST: no source says FC keeps a trigger's URL when its
        qualifier changes."""
        if not self.settings.releases_enabled:
            return False
        return self.result.trigger_qualifier != spec.QUALIFIER

    def live_version(self) -> str | None:
        return self.result.live_version

    def rollback_target(self) -> str | None:
        return self.result.rollback_target()

    def publish_step(self) -> bool:
        if self.checkpoint.version:
            return True
        release = self.checkpoint.release
        look_first = bool(release)  # an earlier run of this release may have published it already
        if not release:
            # Numbered before the call and saved with the checkpoint: a retry publishes (or finds) the same.
            release = int(self.result.release or 0) + 1
            self.checkpoint.release = release
            self.result.release = release
            self.run_.save(checkpoint=self.checkpoint, result=self.result)
        self.run_.record_step("publishing", 65, f"publishing release {release} as a function version")
        response, how = self.gateway.publish_version_once(
            self.req.name, spec.release_marker(self.row.id, release), look_first=look_first
        )
        published = spec.answer_body(response)
        version = str(published.get("versionId"))
        self.checkpoint.version = version
        self.result.version_result = response
        self.result.record_release(
            version,
            release=release,
            image=self.req.image,
            command=list(self.req.command),
            env_keys=sorted({*self.req.env, *self.req.secret_env}),  # keys only, never values
            spec=dict(self.row.spec),  # as stored: secret values are *** (what `live` serves, issue 26 #4)
            created=published.get("createdTime"),
            probe=None,
            fingerprint=None,
        )
        self.run_.save(checkpoint=self.checkpoint, result=self.result)
        log.info("deploy.published", extra={"deployment_id": self.row.id, "version": version, "how": how})
        return True

    def verify_step(self) -> bool:
        """Probe version N+1 through its own trigger while `live` still serves version N; the tools found
        in self.tools. False when a cancel came during the probe."""
        version = str(self.checkpoint.version)
        if self.checkpoint.verified:
            self.tools = list(self.checkpoint.tools or [])
            return True
        if not self.settings.probe_enabled:
            self.checkpoint.verified, self.checkpoint.tools = True, list(self.row.tools or [])
            self.tools = list(self.checkpoint.tools)
            return True
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
        urls = spec.trigger_urls(response)
        url = urls.sse if self.req.transport == Transport.sse else urls.mcp
        if not url:
            raise DeployError(
                "the verify trigger has no internet URL to probe", code="ProbeFailed", step="verify"
            )
        try:
            found = self.interruptible_probe(url)
        except DeployError as exc:
            self.result.record_release(version, probe={"ok": False, "error": str(exc)})
            raise
        if found is None and self.row.operation == "rollback":
            return False  # the target was verified when it was released: it stays a rollback target
        if found is None:
            # Never verified: like a failed one, it can never serve (no rollback to it; retention drops it).
            self.result.record_release(
                version, probe={"ok": False, "cancelled": True, "error": "cancelled during verification"}
            )
            self.run_.save(result=self.result)
            return False
        self.tools = list(found.tools)
        self.result.record_release(
            version,
            probe={"ok": True, "tools": list(found.tools), "protocols": list(found.protocols)},
            fingerprint=found.fingerprint or None,
        )
        self.checkpoint.verified = self.checkpoint.probe = True
        self.checkpoint.tools = list(found.tools)
        live = self.live_version()
        self.record_probe(found, f"version {live}" if live else "the previous deploy", "verifying", 75)
        self.run_.save(checkpoint=self.checkpoint, result=self.result)
        return True

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

    def cutover_step(self) -> bool:
        if self.checkpoint.cutover:
            return True
        version = str(self.checkpoint.version)
        self.run_.record_step("cutover", 85, f"moving {spec.LIVE_ALIAS} to version {version}")
        # Known live version: update first; none yet: create first (either falls back on the other).
        response, how = self.gateway.point_alias(
            self.req.name, spec.LIVE_ALIAS, version, exists=bool(self.live_version())
        )
        self.checkpoint.cutover = True
        self.result.alias_result = response
        self.run_.save(checkpoint=self.checkpoint, result=self.result)
        log.info("deploy.cutover", extra={"deployment_id": self.row.id, "version": version, "how": how})
        return True

    def cleanup_step(self) -> bool:
        self.remove_verify_trigger()
        self.retention_step()
        return True

    def remove_verify_trigger(self) -> None:
        if self.checkpoint.verify_removed or not self.checkpoint.verify_trigger:
            return
        self.gateway.delete_trigger(self.req.name, spec.VERIFY_TRIGGER_NAME)
        self.checkpoint.verify_removed = True

    def retention_step(self) -> None:
        """Delete the versions deployer/ops/releases.py `retention_doomed` names: those that failed
        verification, and good ones past the newest settings.releases_keep good ones (never `live`)."""
        doomed = release_facts.retention_doomed(
            self.result.releases, self.live_version(), int(self.settings.releases_keep)
        )
        changed = False
        for version in doomed:
            try:
                self.gateway.delete_version(self.req.name, version)
            except FCError as exc:
                # FC refuses a version an alias or trigger still uses: keep it, try again next release.
                log.info("deploy.retention_kept", extra={"version": version, "code": exc.code})
                continue
            self.result.record_release(version, deleted=True)
            changed = True
        if changed:
            self.run_.save(result=self.result)
