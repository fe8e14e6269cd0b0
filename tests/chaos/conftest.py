from tests.integration.conftest import env, market_file, redis_url, rt, stack  # noqa: F401  shared fixtures
