"""What a stored result says about releases (deployer/ops/releases.py, issue 26 #4 and #14): which version
the endpoint serves after a run ended, what it differs in from the spec, and what retention deletes."""

from __future__ import annotations

from deployer.ops import releases

OK, FAILED, CANCELLED = {"ok": True}, {"ok": False, "error": "boom"}, {"ok": False, "cancelled": True}


def result(live: str | None, qualifier: str = "live", releases_: list | None = None) -> dict:
    return {
        "trigger_result": {"body": {"qualifier": qualifier}},
        "alias_result": {"body": {"versionId": live}} if live else None,
        "releases": releases_ or [],
    }


def test_a_failed_or_cancelled_run_serves_live_only_when_the_trigger_serves_the_alias():
    assert releases.serving_version("failed", result("1")) == "1"
    assert releases.serving_version("cancelled", result("1")) == "1"
    assert releases.serving_version("succeeded", result("2")) == "2"
    assert releases.serving_version("running", result("1")) is None  # a run is at work
    assert releases.serving_version("deleted", result("1")) is None
    assert releases.serving_version("failed", result(None)) is None  # a first release that never went live
    assert releases.serving_version("failed", result("1", qualifier="LATEST")) is None
    assert releases.endpoint_serves("succeeded", result(None, qualifier="LATEST"))
    assert releases.endpoint_serves("failed", result("1"))
    assert not releases.endpoint_serves("failed", result(None))


def test_live_release_says_which_spec_fields_it_differs_in():
    one = {"name": "n", "image": "i:1", "command": ["a"], "env": {}, "secret_env": {"K": "***"}}
    spec = {**one, "command": ["b"], "secret_env": {"K": "***", "L": "***"}}
    stored = result(
        "1", releases_=[{"version": "1", "release": 1, "image": "i:1", "command": ["a"], "spec": one}]
    )
    live = releases.live_release("succeeded", stored, spec)
    assert live is not None and live["version"] == "1" and live["release"] == 1
    assert live["differs_from_spec"] == ["command", "secret_env"]
    assert releases.live_release("succeeded", stored, one)["differs_from_spec"] == []
    # a release recorded before releases kept their spec: image, command and env keys are compared
    old = result("1", releases_=[{"version": "1", "image": "i:1", "command": ["a"], "env_keys": ["K"]}])
    assert releases.live_release("failed", old, spec)["differs_from_spec"] == ["command", "env"]
    assert releases.live_release("running", stored, spec) is None


def test_retention_deletes_failed_versions_and_keeps_the_newest_good_ones():
    history = [
        {"version": "1", "probe": OK},
        {"version": "2", "probe": FAILED},
        {"version": "3", "probe": CANCELLED},
        {"version": "4", "probe": OK},
        {"version": "5", "probe": OK},
    ]
    # the failed ones go; of the good ones the newest two stay (1 would have gone before for 2 and 3)
    assert releases.retention_doomed(history, "5", 2) == ["1", "2", "3"]
    assert releases.retention_doomed(history, "5", 3) == ["2", "3"]
    # live is never deleted, even when it is old (a rollback)
    assert releases.retention_doomed(history, "1", 2) == ["2", "3"]
    # unprobed versions (probe off) count as good; deleted ones are not deleted twice
    unprobed = [{"version": str(v), "probe": None} for v in range(1, 5)] + [{"version": "5", "deleted": True}]
    assert releases.retention_doomed(unprobed, "4", 2) == ["1", "2"]
    assert releases.failed_verification({"probe": CANCELLED}) and not releases.failed_verification(
        {"probe": None}
    )
