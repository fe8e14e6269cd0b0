"""The pure parts of racing: naming a revert across Aave versions, and the bid that orders us first."""

from __future__ import annotations

from eth_abi import encode
from hypothesis import given
from hypothesis import strategies as st

from liqbot.domain.fees import Fees, effective_tip, outbid
from liqbot.domain.reverts import lost_race, revert_code

GWEI = 10**9


def _error_string(text: str) -> str:
    return "0x08c379a0" + encode(["string"], [text]).hex()


def test_numeric_codes_and_custom_errors_name_the_same_thing():
    assert revert_code(_error_string("45")) == revert_code("0x930bb771") == "HealthFactorNotBelowThreshold"
    assert revert_code(_error_string("103")) == revert_code("0xb629b0e4") == "MustNotLeaveDust"
    assert revert_code(_error_string("47")) == "SpecifiedCurrencyNotBorrowedByUser"
    assert revert_code(_error_string("ERC20: transfer amount exceeds balance")) == "ERC20: transfer amount exceeds balance"
    assert revert_code("0xdeadbeef") is None
    assert revert_code(None) is None
    assert revert_code("0x") is None


def test_only_what_a_rival_causes_is_a_lost_race():
    assert lost_race("HealthFactorNotBelowThreshold")
    assert lost_race("CollateralCannotBeLiquidated")
    assert not lost_race("MustNotLeaveDust")  # our sizing, unless a rival's liquidation is seen
    assert not lost_race(None)
    assert not lost_race("ERC20: transfer amount exceeds balance")


def test_outbid_orders_us_ahead_on_max_fee_and_on_effective_tip():
    ahead = outbid(Fees(30 * GWEI, 5 * GWEI), Fees(50 * GWEI, 2 * GWEI), base_fee=10 * GWEI, ceiling_tip=20 * GWEI,
                   max_fee_cap=500 * GWEI)
    assert ahead is not None
    assert ahead.max_fee > 50 * GWEI
    assert ahead.tip == 5 * GWEI  # already above the rival's


def test_outbid_gives_up_above_the_profit_share_or_the_cap():
    rival = Fees(100 * GWEI, 60 * GWEI)
    assert outbid(Fees(30 * GWEI, 5 * GWEI), rival, base_fee=10 * GWEI, ceiling_tip=20 * GWEI, max_fee_cap=500 * GWEI) is None
    assert outbid(Fees(30 * GWEI, 5 * GWEI), rival, base_fee=10 * GWEI, ceiling_tip=10**12, max_fee_cap=80 * GWEI) is None


@given(ours_max=st.integers(1, 10**12), ours_tip=st.integers(0, 10**11), rival_max=st.integers(1, 10**12),
       rival_tip=st.integers(0, 10**11), base=st.integers(0, 10**11))
def test_an_outbid_always_beats_the_rival_or_is_refused(ours_max, ours_tip, rival_max, rival_tip, base):
    ours, rival = Fees(ours_max, min(ours_tip, ours_max)), Fees(rival_max, min(rival_tip, rival_max))
    cap = 10**12
    ahead = outbid(ours, rival, base_fee=base, ceiling_tip=10**11, max_fee_cap=cap)
    if ahead is not None:
        assert ahead.max_fee > rival.max_fee
        assert ahead.tip > effective_tip(rival, base)
        assert ahead.max_fee <= cap
        assert ahead.tip <= 10**11
        assert ahead.max_fee >= base + ahead.tip


def test_a_tip_at_the_cap_still_outbids_a_cheap_rival():
    """Found racing: with 10% of a big profit above the cap, our tip was the cap itself, and base fee + tip
    above the cap made every outbid fail: the most profitable liquidations went to a 2 gwei rival."""
    cap = 500 * GWEI
    ahead = outbid(Fees(cap, cap), Fees(2 * GWEI, 2 * GWEI), base_fee=7, ceiling_tip=800 * GWEI, max_fee_cap=cap)
    assert ahead is not None
    assert ahead.max_fee == cap
    assert ahead.tip == cap - 7
