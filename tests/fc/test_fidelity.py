"""Gateway behaviour the fidelity audit settled (shared/reference/fc3-fidelity-audit.md rows 29, 43)."""

from __future__ import annotations

import pytest

from deployer.errors import FCConcurrentUpdate, FCConflict
from deployer.fc import spec
from tests.fc.test_gateway import gateway_for, request


def test_concurrent_update_error_is_retried_with_backoff(fc):
    delays: list[float] = []
    gw = gateway_for(fc, delays=delays)
    req = request()
    gw.create_function(spec.create_function_input(req))
    fc.faults.set(
        "UpdateFunction", error_rate=1.0, error_status=409, error_code="ConcurrentUpdateError", count=2
    )
    response = gw.update_function(req.name, spec.update_function_input(req))
    assert response["statusCode"] == 200
    assert fc.faults.stats()["calls"]["UpdateFunction"] == 3 and len(delays) == 2


def test_persistent_concurrent_update_error_surfaces_as_a_retryable_conflict(fc):
    gw = gateway_for(fc, max_attempts=3)
    req = request()
    gw.create_function(spec.create_function_input(req))
    fc.faults.set("UpdateFunction", error_rate=1.0, error_status=409, error_code="ConcurrentUpdateError")
    with pytest.raises(FCConcurrentUpdate) as info:
        gw.update_function(req.name, spec.update_function_input(req))
    assert isinstance(info.value, FCConflict) and info.value.retryable
    assert info.value.code == "ConcurrentUpdateError"
    assert fc.faults.stats()["calls"]["UpdateFunction"] == 3
