"""The xdist scheduling in tests/conftest.py reaches the scheduler: a module's expensive stack is built once,
on one worker, only while pytest-xdist's `--dist loadgroup` can tag a test's id with its group."""

from __future__ import annotations

import pytest

from tests.conftest import SLOWEST_FIRST, cost_rank


def test_a_group_written_the_way_xdist_writes_it_shows_in_the_test_id(request: pytest.FixtureRequest):
    # pytest-xdist 3.8 (remote.py, WorkerInteractor.pytest_collection_modifyitems) appends "@<group>" by
    # assigning `item._nodeid`; the scheduler splits the id on "@". pytest 9.2 no longer reads `_nodeid`.
    node = request.node
    before = node.nodeid
    node._nodeid = f"{before}@probe"
    try:
        assert node.nodeid == f"{before}@probe", "xdist groups would not reach the scheduler (see pyproject)"
    finally:
        node._nodeid = before


def test_the_slowest_modules_start_first():
    faults, conformance = "tests/reliability/test_faults.py::t", "tests/conformance/test_conformance.py::t"
    assert cost_rank(faults) < cost_rank(conformance) < cost_rank("tests/e2e/test_bridge.py::t")
    assert cost_rank("tests/schemas/test_x.py::t") == len(SLOWEST_FIRST)
