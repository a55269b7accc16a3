"""An image-less deploy's build step and its code package (issue 23).

build     on the `build` queue (a run that arrives from another queue re-schedules itself there, and goes
          back to its priority queue once built, so builds never hold the deploy workers): pin the package
          (the deployment's lock unless `upgrade`), build or take it from the cache, refuse what FC would
          refuse; every tool line and the versions pinned go to the deployment's events; result.build keeps
          the lock and what was built. Nothing is sent to FC before it succeeds.

The function step then checks the layers with GetLayerVersionByArn, and sends the zip only when FC's
`codeChecksum` differs from the package's (an unchanged redeploy uploads nothing).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deployer.build import zipfile_det
from deployer.build.builder import Built, build, make_tools, pin
from deployer.build.resolve import Lock
from deployer.celery_app import BUILD_QUEUE, PRIORITY_QUEUE
from deployer.errors import BuildError, FCNotFound
from deployer.fc.code_spec import CodePackage, layer_arns, layer_path
from deployer.store.reads import priority_of
from tasks.deploy_run import DeployRun

#: Tool output lines recorded as events per build (the rest are counted, the failure's tail is in the error).
MAX_OUTPUT_EVENTS = 40


class BuildSteps(DeployRun):
    def current_queue(self) -> str | None:
        info = getattr(self.run_.task.request, "delivery_info", None) or {}
        return info.get("routing_key")

    def build_step(self) -> bool:
        if self.checkpoint.built:
            return True
        if self.current_queue() not in (BUILD_QUEUE, None):
            self.run_.record_step("building", 6, "waiting for a build worker (queue build)")
            self.reschedule(0, BUILD_QUEUE)
        self.run_build()
        self.checkpoint.built = True
        self.run_.save(checkpoint=self.checkpoint, result=self.result)
        if self.current_queue() == BUILD_QUEUE:
            self.reschedule(0, PRIORITY_QUEUE.get(priority_of(self.row), "default"))
        return True

    def run_build(self) -> Built:
        cmd = self.req.package
        assert cmd is not None
        recorded = {"lines": 0}

        def output(line: str) -> None:
            recorded["lines"] += 1
            if recorded["lines"] <= MAX_OUTPUT_EVENTS:
                self.run_.record_step("building", 8, f"build: {line}")

        previous = (self.result.build or {}).get("lock")
        with tempfile.TemporaryDirectory(prefix="mcpfc-home-") as home:
            tools = make_tools(self.settings, output, Path(home), self.req.install_scripts)
            self.run_.record_step(
                "building", 7, f"building {cmd.spec} ({cmd.ecosystem.value}) for {tools.target.describe()}"
            )
            # `upgrade` is the redeploy's that asked for it: a later reconcile of the stored spec keeps the lock
            upgrade = self.req.upgrade and self.row.operation == "redeploy"
            lock, replaced = pin(tools, cmd, Lock.from_json(previous) if previous else None, upgrade)
            self.run_.record_step("building", 8, self.pin_message(cmd.spec, cmd.pinned, lock, replaced))
            built = build(self.settings, tools, cmd, lock)
        m = built.manifest
        how = "from the build cache (nothing built)" if built.cached else "built"
        self.run_.record_step(
            "building", 9, f"code package {how}: {m['package']} {m['version']}, {m['code_size']} bytes"
        )
        region = self.row.region or self.req.region or self.settings.region
        self.result.build = {
            "ecosystem": m["ecosystem"],
            "package": m["package"],
            "version": m["version"],
            "spec": cmd.spec,
            "lock_hash": lock.hash,
            "code_checksum": m["code_checksum"],
            "code_size": m["code_size"],
            "layers": layer_arns(m["ecosystem"], region),
            "target": m["target"],
            "entry": m["entry"],
            "cache_key": m["key"],
            "built_at": datetime.now(UTC).isoformat(),
            "lock": lock.to_json(),
        }
        return built

    @staticmethod
    def pin_message(spec: str, pinned: bool, lock: Lock, replaced: Lock | None) -> str:
        if replaced is not None and replaced.spec == lock.spec:
            if replaced.version == lock.version and replaced.hash == lock.hash:
                return f"upgrade: {lock.name} stays at {lock.version} (nothing newer matches {spec})"
            return f"upgraded {lock.name} from {replaced.version} to {lock.version}"
        if pinned:
            return f"pinned {lock.name} {lock.version} (lock {lock.hash[:12]})"
        return f"{spec} resolved to {lock.name} {lock.version}: pinned to it (lock {lock.hash[:12]})"

    # -- the package as the function step sends it ------------------------------------------------

    def code_package(self, fc_checksum: str | None = None, *, with_code: bool = True) -> CodePackage | None:
        """The built package for the spec; None for an image deploy. Its zip is read from the cache (built
        again from the lock when it was evicted) unless FC already has its checksum or `with_code` is False."""
        if self.req.image is not None:
            return None
        info = self.result.build or {}
        if not info:
            raise BuildError("the code package was not built (no result.build)")
        zip_b64: str | None = None
        if with_code and fc_checksum != info["code_checksum"]:
            zip_b64 = zipfile_det.encode(self.package_bytes(info))
        return CodePackage(
            entry=list(info["entry"]),
            checksum=str(info["code_checksum"]),
            layers=list(info["layers"]),
            path=layer_path(info["ecosystem"]),
            zip_base64=zip_b64,
        )

    def package_bytes(self, info: dict[str, Any]) -> bytes:
        from deployer.build.cache import BuildCache

        cache = BuildCache(self.settings.effective_build_cache_dir, self.settings.build_cache_max_bytes)
        hit = cache.get(str(info["cache_key"]))
        if hit is None:
            self.run_.record_step("building", 9, "the code package left the build cache: building it again")
            built = self.run_build()
            return built.zip_path.read_bytes()
        return hit[0].read_bytes()

    def check_layers(self, layers: list[str]) -> None:
        """GetLayerVersionByArn for each layer before CreateFunction: a region without one fails here,
        clearly, instead of at FC's create."""
        for arn in layers:
            try:
                self.gateway.get_layer_version_by_arn(arn)
            except FCNotFound:
                raise BuildError(
                    f"Function Compute has no layer {arn} in this region: image-less deploys need it "
                    "(deploy with --image instead)",
                    code="LayerNotFound",
                ) from None

    def fc_code_checksum(self) -> tuple[bool, str | None]:
        """`(the function exists, its codeChecksum)`."""
        try:
            body = self.gateway.get_function(self.req.name).get("body") or {}
        except FCNotFound:
            return False, None
        return True, body.get("codeChecksum")
