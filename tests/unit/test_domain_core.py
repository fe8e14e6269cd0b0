"""The pure core: health, event -> users, the configuration bitmap, pair choice."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from liqbot.domain.health import HF_STORE_CAP, is_at_risk, is_liquidatable, storable_hf
from liqbot.domain.liquidation import ReservePosition, simple_plan
from liqbot.domain.units import UINT256_MAX, WAD, ZERO_ADDRESS, value_base
from liqbot.domain.users import affected_users, reserves_in_use

A, B = "0x" + "aa" * 20, "0x" + "bb" * 20


def test_liquidatable_needs_debt_and_hf_below_one():
    assert is_liquidatable(WAD - 1, 1)
    assert not is_liquidatable(WAD, 1)
    assert not is_liquidatable(0, 0)
    assert not is_liquidatable(UINT256_MAX, 0)
    assert is_at_risk(WAD, 1, 11 * WAD // 10)
    assert not is_at_risk(WAD, 0, 11 * WAD // 10)


@given(st.integers(min_value=0, max_value=UINT256_MAX))
def test_stored_hf_fits_64_bits_and_keeps_order_below_the_cap(hf):
    stored = storable_hf(hf)
    assert 0 <= stored <= HF_STORE_CAP
    if hf < HF_STORE_CAP:
        assert stored == hf


def test_users_come_from_the_right_arguments():
    # Topic 1 of Supply/Borrow/Withdraw/Repay is the reserve, never a user.
    assert affected_users("Supply", {"reserve": B, "user": B, "onBehalfOf": A}) == [A]
    assert affected_users("Borrow", {"reserve": B, "user": B, "onBehalfOf": A}) == [A]
    assert affected_users("Withdraw", {"reserve": B, "user": A, "to": B}) == [A]
    assert affected_users("Repay", {"reserve": B, "user": A, "repayer": B}) == [A]
    assert affected_users("LiquidationCall", {"collateralAsset": B, "user": A, "liquidator": B}) == [A]
    assert affected_users("BalanceTransfer", {"from": A, "to": B}) == [A, B]
    assert affected_users("BalanceTransfer", {"from": ZERO_ADDRESS, "to": B}) == [B]
    assert affected_users("AnswerUpdated", {"current": 1}) == []


@given(st.dictionaries(st.integers(min_value=0, max_value=127), st.tuples(st.booleans(), st.booleans())))
def test_configuration_bitmap_round_trips(used):
    bitmap = 0
    for rid, (borrowing, collateral) in used.items():
        bitmap |= (int(borrowing) | int(collateral) << 1) << (2 * rid)
    expected = sorted((rid, b, c) for rid, (b, c) in used.items() if b or c)
    assert reserves_in_use(bitmap, 128) == expected


def _pos(asset: str, coll: int, debt: int, price: int = 10**8, **kw) -> ReservePosition:
    return ReservePosition(asset, 18, price, coll, debt, coll > 0, 8000, 10500, **kw)


def test_simple_plan_takes_the_largest_seizable_collateral_and_largest_debt():
    plan = simple_plan([_pos("0xS", 5 * WAD, 0), _pos("0xL", 9 * WAD, 0), _pos("0xD", 0, 3 * WAD),
                        _pos("0xP", 99 * WAD, 0, paused=True), _pos("0xE", 0, WAD, price=10 * 10**8)])
    assert plan is not None
    assert (plan.collateral_asset, plan.debt_asset, plan.debt_to_cover) == ("0xL", "0xE", UINT256_MAX)
    assert simple_plan([_pos("0xD", 0, WAD)]) is None
    assert simple_plan([_pos("0xC", WAD, 0)]) is None


def test_value_base_rounds_down():
    assert value_base(10**6 - 1, 10**8, 6) == 10**8 - 100
    assert value_base(1, 1, 18) == 0
