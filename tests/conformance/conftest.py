"""The conformance module deploys on the e2e modules' shared stack (tests/e2e/conftest.py), whose fixtures
are seen only below tests/e2e/ unless a conftest names them."""

from tests.e2e.conftest import plain_stack, shared_stacks

__all__ = ["plain_stack", "shared_stacks"]
