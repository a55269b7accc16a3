"""The packaging tests migrate a fresh PostgreSQL database of their own, made as the integration tests make one."""

from tests.integration.conftest import postgres_url  # noqa: F401
