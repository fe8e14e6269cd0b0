"""Fixtures shared by the test tiers: one devnet per Aave version per session, reverted around each test.

The session devnet runs `--aave` (default: the devnet's default). A test, module or class marked
`@pytest.mark.aave("3.0", "3.6")` (no arguments: every version) runs once per version, each against
its own devnet; fixtures built on `devnet` (market_file, env, rt, stack) follow it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from liqbot.devnet import AAVE_VERSIONS, DEFAULT_AAVE, Devnet


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--aave", choices=AAVE_VERSIONS, default=DEFAULT_AAVE,
                     help="Aave version of the session devnet for tests not marked with @pytest.mark.aave")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "aave(*versions): run once per Aave version (default: all) on its own devnet")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("aave")
    if marker and "aave_version" in metafunc.fixturenames:
        metafunc.parametrize("aave_version", marker.args or AAVE_VERSIONS, indirect=True, scope="session",
                             ids=[f"aave{v}" for v in marker.args or AAVE_VERSIONS])


@pytest.fixture(scope="session")
def _devnets() -> Iterator[Callable[[str], Devnet]]:
    """Started on first use and kept to the end, so tests alternating versions never redeploy."""
    started: dict[str, Devnet] = {}

    def get(version: str) -> Devnet:
        if version not in started:
            started[version] = Devnet.start(aave_version=version)
        return started[version]

    try:
        yield get
    finally:
        for dn in started.values():
            dn.stop()


@pytest.fixture(scope="session")
def aave_version(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", None) or request.config.getoption("--aave")


@pytest.fixture(scope="session")
def devnet(_devnets: Callable[[str], Devnet], aave_version: str) -> Devnet:
    return _devnets(aave_version)


@pytest.fixture
def chain(devnet: Devnet) -> Iterator[Devnet]:
    """The session devnet, with every change a test makes undone after it."""
    snap = devnet.snapshot()
    try:
        yield devnet
    finally:
        devnet.revert(snap)
