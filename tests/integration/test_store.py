"""The position store on SQLite (the default) and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from liqbot.domain.health import AccountData
from liqbot.domain.liquidation import ReservePosition
from liqbot.domain.units import UINT256_MAX, WAD
from liqbot.store.attempts import attempts_for, pending_attempts, record_attempt
from liqbot.store.db import User, make_engine
from liqbot.store.positions import (
    at_risk_users,
    exposure,
    get_cursor,
    known_users,
    save_health,
    save_position,
    set_cursor,
    tracked_since,
)
from tests.helpers import postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
        yield sessionmaker(engine, expire_on_commit=False)
        engine.dispose()
        return
    gen = postgres_database("liqbot_test")
    url = next(gen)
    engine = make_engine(url)
    try:
        yield sessionmaker(engine, expire_on_commit=False)
    finally:
        engine.dispose()
        gen.close()


def _acc(user: str, hf: int, debt: int = 100) -> AccountData:
    return AccountData(user, 1_000, debt, 0, 8000, 7500, hf)


def _pos(asset: str, coll: int, debt: int) -> ReservePosition:
    return ReservePosition(asset, 18, 2000 * 10**8, coll, debt, coll > 0, 8250, 10500)


def test_positions_round_trip_with_amounts_beyond_64_bits(sessions: sessionmaker):
    huge = 123_456_789 * 10**24  # far beyond 2**63
    with sessions.begin() as s:
        save_position(s, _acc("0xA", WAD), [_pos("0xWETH", huge, 0), _pos("0xUSDC", 0, UINT256_MAX)], block=5)
    with sessions.begin() as s:  # a refresh replaces the rows
        save_position(s, _acc("0xA", WAD), [_pos("0xWETH", huge, 0), _pos("0xDAI", 0, 7)], block=6)
    with sessions() as s:
        assert exposure(s) == {"0xWETH": {"0xA"}, "0xDAI": {"0xA"}}
        from liqbot.store.db import Position

        rows = {p.asset: p for p in s.query(Position).all()}
        assert rows["0xWETH"].collateral == huge
        assert rows["0xDAI"].debt == 7


def test_at_risk_orders_numerically_and_ignores_users_without_debt(sessions: sessionmaker):
    with sessions.begin() as s:
        save_health(s, [_acc("0xB", 105 * WAD // 100), _acc("0xC", 95 * WAD // 100), _acc("0xD", 2 * WAD),
                        _acc("0xE", 9 * WAD // 10, debt=0), _acc("0xF", UINT256_MAX, debt=0),
                        _acc("0xG", 10 * WAD)], block=1)
    with sessions() as s:
        assert at_risk_users(s, 11 * WAD // 10) == ["0xC", "0xB"]  # "10" would sort before "9" as text
        assert known_users(s) == ["0xB", "0xC", "0xD", "0xE", "0xF", "0xG"]


def test_cursor_and_attempts(sessions: sessionmaker):
    with sessions.begin() as s:
        assert get_cursor(s, "producer") is None
        set_cursor(s, "producer", 41)
    with sessions.begin() as s:
        set_cursor(s, "producer", 42)
        record_attempt(s, user="0xA", path="fast", detected_block=9, detected_at=1.0, outcome="sent",
                       tx_hash="0x" + "1" * 64, debt_to_cover=UINT256_MAX, latency_ms=12.5)
        record_attempt(s, user="0xA", path="scan", detected_block=9, detected_at=1.0, outcome="skipped",
                       reason="no longer liquidatable")
    with sessions() as s:
        assert get_cursor(s, "producer") == 42
        attempts = attempts_for(s, "0xA")
        assert [(a.path, a.outcome) for a in attempts] == [("fast", "sent"), ("scan", "skipped")]
        assert attempts[0].debt_to_cover == UINT256_MAX
        assert [a.path for a in pending_attempts(s)] == ["fast"]


def test_a_users_first_seen_block_is_kept_through_later_updates(sessions: sessionmaker):
    """The capture audit asks whether we tracked a user before its liquidation: the row's other columns are
    rewritten after it, the first block stays."""
    with sessions.begin() as s:
        save_health(s, [_acc("0xA", 9 * 10**17)], block=10)
        save_position(s, _acc("0xB", 9 * 10**17), [_pos("0xT", 1, 1)], block=11)
    with sessions.begin() as s:
        save_health(s, [_acc("0xA", 8 * 10**17), _acc("0xB", 8 * 10**17)], block=20)
        save_position(s, _acc("0xA", 8 * 10**17), [_pos("0xT", 1, 1)], block=21)
    with sessions() as s:
        assert tracked_since(s, {"0xA", "0xB", "0xC"}) == {"0xA": 10, "0xB": 11}
        assert {u.address: u.updated_block for u in s.scalars(select(User))} == {"0xA": 21, "0xB": 20}
