"""Integration fixtures: a Redis server of our own, the devnet's market file, a fresh database and
settings per test, and real liqbot processes (celery workers, beat, producer) on demand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from liqbot.devnet import Devnet
from liqbot.devnet.stack import Stack


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stack = Stack(tmp_path_factory.mktemp("redis"))
    try:
        yield stack.redis()
    finally:
        stack.stop_all()


@pytest.fixture(scope="session")
def market_file(devnet: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("market") / "market.json"
    devnet.market.save(path)
    return path


def reset_caches() -> None:
    from liqbot.config import get_settings
    from liqbot.runtime import runtime
    from liqbot.store.db import session_factory
    from liqbot.store.redis import client

    for fn in (get_settings, runtime, session_factory, client):
        fn.cache_clear()


@pytest.fixture
def env(chain: Devnet, redis_url: str, market_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Settings for this test (also exported to the processes it starts); Redis flushed, new database."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    values = {
        "MARKET_FILE": str(market_file),
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'liqbot.sqlite'}",
        "SCAN_INTERVAL_SECS": "1",
        "FULL_RESCAN_INTERVAL_SECS": "3",
        "LOG_LEVEL": "INFO",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    reset_caches()
    from liqbot.celery import app

    app.conf.broker_url = redis_url
    yield values
    reset_caches()


@pytest.fixture
def stack(env: dict[str, str], tmp_path: Path) -> Iterator[Stack]:
    st = Stack(tmp_path, env=dict(env))
    try:
        yield st
    finally:
        st.stop_all()


@pytest.fixture
def rt(env: dict[str, str]):
    from liqbot.runtime import runtime

    return runtime()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


