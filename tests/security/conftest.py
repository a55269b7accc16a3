"""Security tests run whole stacks too: reuse the integration harness's fixtures."""

from tests.integration.conftest import postgres_url, redis_url, stack_factory  # noqa: F401
