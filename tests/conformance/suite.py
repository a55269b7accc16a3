"""The official MCP conformance suite as the tests run it: `@modelcontextprotocol/conformance` 0.1.16 on
Node 22, both from npm and pinned in this folder's package.json / package-lock.json (`npm ci` here; .ci/run
does it), and its verdict per scenario read back from the `checks.json` each scenario leaves.

A scenario passes only when none of its checks failed AND at least one succeeded: several scenarios end in
warnings or notes alone when the server lacks what they probe (no session, JSON instead of SSE), and the
suite's own summary counts those as passed although they checked nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import in_ci

HERE = Path(__file__).resolve().parent
NODE = HERE / "node_modules" / "node" / "bin" / "node"
CLI = HERE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
SERVER = HERE / "everything_server.py"

# The server scenarios of 0.1.16's `--suite all`, in the suite's order. Pinned with the suite: a run that
# leaves fewer stopped half-way, and a new suite release must be looked at before its scenarios count.
SCENARIOS = (
    "server-initialize",
    "logging-set-level",
    "ping",
    "completion-complete",
    "tools-list",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-with-logging",
    "tools-call-error",
    "tools-call-with-progress",
    "tools-call-sampling",
    "tools-call-elicitation",
    "json-schema-2020-12",
    "elicitation-sep1034-defaults",
    "server-sse-polling",
    "server-sse-multiple-streams",
    "elicitation-sep1330-enums",
    "resources-list",
    "resources-read-text",
    "resources-read-binary",
    "resources-templates-read",
    "resources-subscribe",
    "resources-unsubscribe",
    "prompts-list",
    "prompts-get-simple",
    "prompts-get-with-args",
    "prompts-get-embedded-resource",
    "prompts-get-with-image",
    "dns-rebinding-protection",
)

PASS, CHECKS_NOTHING, FAIL = "pass", "checks nothing", "FAIL"


@dataclass(frozen=True)
class Verdict:
    status: str
    succeeded: int
    detail: str = ""

    def __str__(self) -> str:
        return self.status if self.status == PASS else f"{self.status}: {self.detail}"[:160]


def verdict(checks: list[dict[str, Any]]) -> Verdict:
    succeeded = sum(check["status"] == "SUCCESS" for check in checks)
    failed = [check for check in checks if check["status"] == "FAILURE"]
    if failed:
        first = failed[0]
        return Verdict(FAIL, succeeded, f"{first['id']}: {first.get('errorMessage', '')}")
    if not succeeded:
        notes = [c.get("errorMessage") or c.get("details", {}).get("message") for c in checks]
        return Verdict(CHECKS_NOTHING, 0, "; ".join(n for n in notes if n) or "no checks")
    return Verdict(PASS, succeeded)


# `server-<scenario>-<ISO time with dashes>`, one folder per scenario under the run's -o folder.
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def read_verdicts(out: Path) -> dict[str, Verdict]:
    found: dict[str, Verdict] = {}
    for folder in sorted(out.iterdir()):
        if (match := RESULT_DIR.match(folder.name)) and (folder / "checks.json").exists():
            found[match["scenario"]] = verdict(json.loads((folder / "checks.json").read_text()))
    return found


def require_suite(*, install: bool = True) -> None:
    """The suite and its Node must be installed: `npm ci` here when they are not (the README's test command
    runs no npm of its own); under CI a suite that is still missing is a failure, not a skip."""
    if NODE.exists() and CLI.exists():
        return
    npm = shutil.which("npm")
    if install and npm is not None:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if NODE.exists() and CLI.exists():
            return
        pytest.fail(f"`npm ci` in {HERE} did not install the conformance suite:\n{done.stderr[-2000:]}")
    message = f"the conformance suite is not installed: run `npm ci` in {HERE} (.ci/run does)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


class SuiteRun:
    """One `conformance server --suite all` against a URL, started at once so that runs overlap."""

    def __init__(self, url: str, out: Path) -> None:
        self.url, self.out = url, out
        out.mkdir(parents=True)
        self.log = out.with_suffix(".log")
        argv = [str(NODE), str(CLI), "server", "--url", url, "--suite", "all", "-o", str(out)]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=HERE)

    def verdicts(self, timeout: float) -> dict[str, Verdict]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"the suite against {self.url} ran over {timeout:.0f} s: {self.tail()}"
            ) from None
        found = read_verdicts(self.out)
        missing = [s for s in SCENARIOS if s not in found]
        assert not missing, f"the suite against {self.url} left no result for {missing}: {self.tail()}"
        return found

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def table(runs: dict[str, dict[str, Verdict]]) -> str:
    """Scenario by scenario, one column per target: what the report and a failing assertion show."""
    targets = list(runs)
    lines = ["| scenario | " + " | ".join(targets) + " |", "|---" * (len(targets) + 1) + "|"]
    for scenario in SCENARIOS:
        cells = [str(runs[t].get(scenario, Verdict(FAIL, 0, "no result"))) for t in targets]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    totals = [sum(v.status == PASS for v in runs[t].values()) for t in targets]
    lines.append("| **passed** | " + " | ".join(f"{n}/{len(SCENARIOS)}" for n in totals) + " |")
    return "\n".join(lines)
