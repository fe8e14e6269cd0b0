"""Sizing, seizure and profit (pure), property-tested against the on-chain formulas."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from liqbot.domain.close_factor import (
    CLOSE_FACTOR_HF_THRESHOLD,
    MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD,
    MIN_LEFTOVER_BASE,
    Rules,
    leaves_dust,
    max_liquidatable_debt,
)
from liqbot.domain.fees import bid
from liqbot.domain.liquidation import ReservePosition, candidates, decide, gas_cost_base, seize
from liqbot.domain.math import percent_div, percent_mul
from liqbot.domain.units import BPS, WAD, value_base

hfs = st.integers(min_value=1, max_value=WAD - 1)
amounts = st.integers(min_value=1, max_value=10**30)
prices = st.integers(min_value=10**4, max_value=10**14)  # $0.0001 .. $1M in 1e8 units
decimals = st.sampled_from([6, 8, 18])
bonuses = st.integers(min_value=10_001, max_value=11_500)
fees = st.integers(min_value=0, max_value=5_000)


def pos(asset: str, dec: int, price: int, coll: int = 0, debt: int = 0, bonus: int = 10_500, fee: int = 1_000,
        **kw) -> ReservePosition:
    return ReservePosition(asset, dec, price, coll, debt, coll > 0, 8_000, bonus, fee, **kw)


def test_percentage_math_rounds_half_up_like_aave():
    assert percent_mul(10_001, 5_000) == 5_001  # 5000.5 -> 5001
    assert percent_mul(3, 5_000) == 2  # 1.5 -> 2
    assert percent_div(100, 10_500) == 95  # 95.238
    assert percent_div(21, 10_000) == 21


@given(debt=amounts, hf=hfs)
def test_v30_close_factor_is_half_above_095_and_all_at_or_below(debt, hf):
    cap = max_liquidatable_debt(Rules.V30, reserve_debt=debt, health_factor=hf, debt_price=10**8, debt_unit=10**18,
                                reserve_collateral_base=0, total_debt_base=0)
    assert cap == (percent_mul(debt, 5_000) if hf > CLOSE_FACTOR_HF_THRESHOLD else debt)


@given(debt=amounts, hf=hfs, price=prices, dec=decimals, coll_base=st.integers(0, 10**16), other_debt=st.integers(0, 10**16))
def test_v33_close_factor(debt, hf, price, dec, coll_base, other_debt):
    unit = 10**dec
    debt_base = debt * price // unit
    total = debt_base + other_debt
    cap = max_liquidatable_debt(Rules.V33, reserve_debt=debt, health_factor=hf, debt_price=price, debt_unit=unit,
                                reserve_collateral_base=coll_base, total_debt_base=total)
    limited = (coll_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD and debt_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
               and hf > CLOSE_FACTOR_HF_THRESHOLD and debt_base > percent_mul(total, 5_000))
    if limited:
        assert cap == percent_mul(total, 5_000) * unit // price
        assert cap <= debt
    else:
        assert cap == debt  # the whole reserve debt by default


@given(debt=amounts, repaid=amounts, coll=amounts, taken=amounts, price=prices)
def test_dust_rule_only_bites_partial_v33_liquidations(debt, repaid, coll, taken, price):
    kw = {"debt_before": debt, "debt_repaid": repaid, "debt_price": price, "debt_unit": 10**18,
          "collateral_before": coll, "collateral_taken": taken, "collateral_price": price, "collateral_unit": 10**18}
    assert not leaves_dust(Rules.V30, **kw)
    dust = leaves_dust(Rules.V33, **kw)
    if repaid >= debt or taken >= coll:
        assert not dust
    else:
        left_debt, left_coll = (debt - repaid) * price // 10**18, (coll - taken) * price // 10**18
        assert dust == (left_debt < MIN_LEFTOVER_BASE or left_coll < MIN_LEFTOVER_BASE)


@settings(max_examples=500)
@given(cover=amounts, coll_amt=amounts, cp=prices, dp=prices, cd=decimals, dd=decimals, bonus=bonuses, fee=fees)
def test_seizure_matches_the_pool_formula(cover, coll_amt, cp, dp, cd, dd, bonus, fee):
    coll, debt = pos("C", cd, cp, coll=coll_amt, bonus=bonus, fee=fee), pos("D", dd, dp, debt=cover)
    s = seize(cover, coll, debt)
    taken = s.collateral + s.protocol_fee
    assert taken <= coll_amt
    assert s.debt_repaid <= cover
    base = dp * cover * 10**cd // (cp * 10**dd)
    if percent_mul(base, bonus) <= coll_amt:
        assert s.debt_repaid == cover
        assert taken == percent_mul(base, bonus)
    else:  # the collateral runs out first: all of it goes, for proportionally less debt
        assert taken == coll_amt
    bonus_part = taken - percent_div(taken, bonus)
    assert s.protocol_fee == (percent_mul(bonus_part, fee) if fee else 0)


@given(cover=st.integers(10**6, 10**24), cp=prices, dp=prices, bonus=bonuses, fee=fees)
def test_gross_profit_is_the_bonus_less_the_protocol_share(cover, cp, dp, bonus, fee):
    coll, debt = pos("C", 18, cp, coll=10**40, bonus=bonus, fee=fee), pos("D", 18, dp, debt=cover)
    s = seize(cover, coll, debt)
    received = value_base(s.collateral, cp, 18)
    repaid = value_base(s.debt_repaid, dp, 18)
    expected = repaid * (bonus - BPS) * (BPS - fee) // (BPS * BPS)
    assert abs((received - repaid) - expected) <= 2 + (cp + dp) // 10**17 + repaid // 10**12


@settings(max_examples=300)
@given(hf=hfs, inv=st.integers(0, 10**24), c1=st.integers(10**15, 10**22), c2=st.integers(10**5, 10**9),
       d=st.integers(10**6, 10**12), rules=st.sampled_from(list(Rules)))
def test_decide_keeps_the_most_profitable_pair_within_inventory(hf, inv, c1, c2, d, rules):
    positions = [pos("WETH", 18, 2_000 * 10**8, coll=c1, bonus=10_500), pos("WBTC", 8, 40_000 * 10**8, coll=c2, bonus=10_650),
                 pos("USDC", 6, 10**8, debt=d)]
    total_debt = value_base(d, 10**8, 6)
    inventory = {"USDC": inv}
    found = candidates(positions, health_factor=hf, total_debt_base=total_debt, rules=rules, inventory=inventory)
    decision = decide(positions, health_factor=hf, total_debt_base=total_debt, rules=rules, inventory=inventory,
                      gas_cost_base=0, min_profit_base=0)
    assert all(c.debt_to_cover <= inv for c in found)
    if inv == 0:
        assert decision.reason == "no inventory"
    elif decision.plan is not None:
        assert decision.plan.gross_profit_base == max(c.gross_profit_base for c in found)
        assert decision.profit_base >= 0


def test_decide_says_why_not():
    d = pos("USDC", 6, 10**8, debt=10**9)
    c = pos("WETH", 18, 2_000 * 10**8, coll=10**18)
    common = {"total_debt_base": 10**11, "rules": Rules.V30, "gas_cost_base": 0, "min_profit_base": 0}
    assert decide([c, d], health_factor=WAD, inventory={"USDC": 10**12}, **common).reason == "no longer liquidatable"
    assert decide([c, d], health_factor=WAD // 2, inventory={}, **common).reason == "no inventory"
    assert decide([d], health_factor=WAD // 2, inventory={"USDC": 1}, **common).reason == \
        "no seizable collateral or repayable debt"
    paused = pos("WETH", 18, 2_000 * 10**8, coll=10**18, paused=True)
    frozen_ok = decide([c, d], health_factor=WAD // 2, inventory={"USDC": 10**12}, **common)
    assert frozen_ok.plan is not None
    assert decide([paused, d], health_factor=WAD // 2, inventory={"USDC": 10**12}, **common).reason == \
        "no seizable collateral or repayable debt"
    costly = {**common, "gas_cost_base": 10**12}
    assert decide([c, d], health_factor=WAD // 2, inventory={"USDC": 10**12}, **costly).reason == "unprofitable"


def test_v33_partial_cover_that_would_leave_dust_is_not_proposed():
    # $2,500 of debt, inventory for $2,000 of it: $500 left < MIN_LEFTOVER_BASE ($1,000) -> reverts on chain.
    d = pos("USDC", 6, 10**8, debt=2_500 * 10**6)
    c = pos("WETH", 18, 2_000 * 10**8, coll=10 * 10**18)
    kw = {"health_factor": WAD * 9 // 10, "total_debt_base": 2_500 * 10**8, "rules": Rules.V33, "gas_cost_base": 0,
          "min_profit_base": 0}
    assert decide([c, d], inventory={"USDC": 2_000 * 10**6}, **kw).reason == "would leave dust"
    whole = decide([c, d], inventory={"USDC": 2_500 * 10**6}, **kw)
    assert whole.plan is not None
    assert whole.plan.debt_to_cover == 2_500 * 10**6


@given(base=st.integers(0, 10**12), gas=st.integers(21_000, 10**7), profit=st.integers(-10**12, 10**14),
       native=st.integers(0, 10**13), tip=st.integers(0, 10**11), share=st.integers(0, BPS), cap=st.integers(1, 10**13))
def test_fee_bids_never_exceed_the_cap(base, gas, profit, native, tip, share, cap):
    f = bid(base_fee=base, gas=gas, profit_base=profit, native_price=native, min_tip=tip, profit_share_bps=share,
            max_fee_cap=cap)
    assert f.tip <= f.max_fee <= cap
    assert f.tip >= min(tip, cap)
    if profit > 0 and native > 0 and share > 0:  # the bid never spends more than the share of the profit...
        assert gas_cost_base(gas, f.tip, native) <= max(profit * share // BPS, gas_cost_base(gas, min(tip, cap), native)) + 1
