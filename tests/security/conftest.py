"""Security tests run whole stacks too: reuse the integration harness's fixtures."""

from tests.integration.conftest import (  # noqa: F401
    postgres_url,
    redis_results_url,
    redis_url,
    stack_factory,
)
