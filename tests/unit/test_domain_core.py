"""The pure core: health, event -> users, the configuration bitmap, pair choice."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from liqbot.domain.health import HF_STORE_CAP, is_at_risk, is_liquidatable, storable_hf
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


def test_value_base_rounds_down():
    assert value_base(10**6 - 1, 10**8, 6) == 10**8 - 100
    assert value_base(1, 1, 18) == 0
