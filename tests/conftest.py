"""Fixtures shared by the test tiers: one devnet per session, reverted around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from liqbot.devnet import Devnet


@pytest.fixture(scope="session")
def devnet() -> Iterator[Devnet]:
    dn = Devnet.start()
    try:
        yield dn
    finally:
        dn.stop()


@pytest.fixture
def chain(devnet: Devnet) -> Iterator[Devnet]:
    """The session devnet, with every change a test makes undone after it."""
    snap = devnet.snapshot()
    try:
        yield devnet
    finally:
        devnet.revert(snap)
