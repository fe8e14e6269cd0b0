"""The mirror's pure math against Solidity's own definitions.

Each oracle below transcribes the Solidity (assembly and checked 0.8 arithmetic) on emulated 256-bit
words: EVM `mul`/`add`/`sub` wrap, `div` by zero is 0, checked arithmetic reverts. The implementation
must give the same number, and raise MathRevert exactly where the chain reverts.
"""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from liqbot.domain import interest, wadray
from liqbot.domain.account import (
    REVISIONS,
    EModeCategory,
    MarketState,
    NotModelled,
    ReserveState,
    StableDebt,
    UnsupportedRevision,
    UserState,
    account_data,
    market_at,
    rules_for_revision,
)
from liqbot.domain.health import AccountData
from liqbot.domain.math import percent_mul
from liqbot.domain.units import RAY, UINT256_MAX, WAD
from liqbot.domain.wadray import MathRevert
from liqbot.mirror import Mirror

W = 2**256
HALF_WAD, HALF_RAY, RATIO = WAD // 2, RAY // 2, 10**9
SPY = 365 * 24 * 3600


class Revert(Exception):
    pass


# EVM words
def add(a, b):
    return (a + b) % W


def mul(a, b):
    return (a * b) % W


def sub(a, b):
    return (a - b) % W


def div(a, b):
    return 0 if b == 0 else a // b


def mod(a, b):
    return 0 if b == 0 else a % b


def gt(a, b):
    return int(a > b)


def lt(a, b):
    return int(a < b)


def iszero(a):
    return int(a == 0)


def not0():
    return W - 1


# Solidity 0.8 checked arithmetic
def cadd(a, b):
    if a + b >= W:
        raise Revert
    return a + b


def csub(a, b):
    if b > a:
        raise Revert
    return a - b


def cmul(a, b):
    if a * b >= W:
        raise Revert
    return a * b


# WadRayMath.sol / PercentageMath.sol / MathUtils.sol (v3.6 sources; the half-up ones are unchanged since v3.0)
def sol_wad_mul(a, b):
    if iszero(iszero(b) | iszero(gt(a, div(sub(not0(), HALF_WAD), b)))):
        raise Revert
    return div(add(mul(a, b), HALF_WAD), WAD)


def sol_wad_div(a, b):
    if iszero(b) | iszero(iszero(gt(a, div(sub(not0(), div(b, 2)), WAD)))):
        raise Revert
    return div(add(mul(a, WAD), div(b, 2)), b)


def sol_ray_mul(a, b):
    if iszero(iszero(b) | iszero(gt(a, div(sub(not0(), HALF_RAY), b)))):
        raise Revert
    return div(add(mul(a, b), HALF_RAY), RAY)


def sol_ray_div(a, b):
    if iszero(b) | iszero(iszero(gt(a, div(sub(not0(), div(b, 2)), RAY)))):
        raise Revert
    return div(add(mul(a, RAY), div(b, 2)), b)


def sol_ray_mul_floor(a, b):
    if iszero(iszero(b) | iszero(gt(a, div(not0(), b)))):
        raise Revert
    return div(mul(a, b), RAY)


def sol_ray_mul_ceil(a, b):
    if iszero(iszero(b) | iszero(gt(a, div(not0(), b)))):
        raise Revert
    product = mul(a, b)
    return add(div(product, RAY), iszero(iszero(mod(product, RAY))))


def sol_ray_div_ceil(a, b):
    if iszero(b) | iszero(iszero(gt(a, div(not0(), RAY)))):
        raise Revert
    scaled = mul(a, RAY)
    return add(div(scaled, b), iszero(iszero(mod(scaled, b))))


def sol_ray_div_floor(a, b):
    if iszero(b) | iszero(iszero(gt(a, div(not0(), RAY)))):
        raise Revert
    return div(mul(a, RAY), b)


def sol_ray_to_wad(a):
    b = div(a, RATIO)
    if iszero(lt(mod(a, RATIO), div(RATIO, 2))):
        b = add(b, 1)
    return b


def sol_wad_to_ray(a):
    b = mul(a, RATIO)
    if iszero(int(div(b, RATIO) == a)):
        raise Revert
    return b


def sol_mul_div_ceil(a, b, c):
    if iszero(c):
        raise Revert
    if iszero(iszero(b) | iszero(gt(a, div(not0(), b)))):
        raise Revert
    product = mul(a, b)
    return add(div(product, c), iszero(iszero(mod(product, c))))


def sol_percent_mul_floor(value, percentage):
    if iszero(iszero(percentage) | iszero(gt(value, div(not0(), percentage)))):
        raise Revert
    return div(mul(value, percentage), 10_000)


def sol_percent_mul(value, percentage):
    if iszero(iszero(percentage) | iszero(gt(value, div(sub(not0(), 5_000), percentage)))):
        raise Revert
    return div(add(mul(value, percentage), 5_000), 10_000)


def sol_linear_interest(rate, last, now):
    result = cmul(rate, csub(now, last))
    result = div(result, SPY)  # unchecked
    return cadd(RAY, result)


def sol_compounded_v30(rate, last, now):
    exp = csub(now, last)
    if exp == 0:
        return RAY
    exp_minus_one = sub(exp, 1)  # unchecked block
    exp_minus_two = sub(exp, 2) if exp > 2 else 0
    base_power_two = div(sol_ray_mul(rate, rate), SPY * SPY)
    base_power_three = div(sol_ray_mul(base_power_two, rate), SPY)
    second = div(cmul(cmul(exp, exp_minus_one), base_power_two), 2)
    third = div(cmul(cmul(cmul(exp, exp_minus_one), exp_minus_two), base_power_three), 6)
    return cadd(cadd(cadd(RAY, div(cmul(rate, exp), SPY)), second), third)


def sol_compounded_v34(rate, last, now):
    exp = csub(now, last)
    if exp == 0:
        return RAY
    x = div(mul(rate, exp), SPY)  # unchecked from here
    return add(add(RAY, x), sol_ray_mul(x, add(div(x, 2), sol_ray_mul(x, div(x, 6)))))


def same(impl: Callable[..., int], oracle: Callable[..., int], *args: int) -> None:
    try:
        expected = oracle(*args)
    except Revert:
        with pytest.raises(MathRevert):
            impl(*args)
        return
    assert impl(*args) == expected


uint256 = st.one_of(
    st.integers(0, UINT256_MAX), st.integers(0, 2**128), st.integers(0, 10**30), st.integers(0, 1000),
    st.sampled_from([0, 1, 2, HALF_RAY, RAY, RAY - 1, RAY + 1, UINT256_MAX, UINT256_MAX - 1, 2**128, 2**255]),
)
PAIRS = [
    (wadray.wad_mul, sol_wad_mul), (wadray.wad_div, sol_wad_div), (wadray.ray_mul, sol_ray_mul),
    (wadray.ray_div, sol_ray_div), (wadray.ray_mul_floor, sol_ray_mul_floor), (wadray.ray_mul_ceil, sol_ray_mul_ceil),
    (wadray.ray_div_floor, sol_ray_div_floor), (wadray.ray_div_ceil, sol_ray_div_ceil),
    (wadray.percent_mul_floor, sol_percent_mul_floor),
]


@pytest.mark.parametrize(("impl", "oracle"), PAIRS, ids=[p[0].__name__ for p in PAIRS])
@given(a=uint256, b=uint256)
def test_wad_ray_math_is_solidity(impl, oracle, a, b):
    same(impl, oracle, a, b)


@pytest.mark.parametrize(("impl", "oracle"), PAIRS, ids=[p[0].__name__ for p in PAIRS])
@given(b=st.integers(1, UINT256_MAX), delta=st.integers(-2, 2))
def test_wad_ray_math_reverts_exactly_at_the_overflow_bound(impl, oracle, b, delta):
    for bound in ((UINT256_MAX - HALF_RAY) // b, (UINT256_MAX - HALF_WAD) // b, UINT256_MAX // b,
                  (UINT256_MAX - b // 2) // RAY, (UINT256_MAX - b // 2) // WAD, UINT256_MAX // RAY):
        a = bound + delta
        if 0 <= a <= UINT256_MAX:
            same(impl, oracle, a, b)


@given(a=uint256)
def test_ray_wad_conversions_are_solidity(a):
    same(wadray.ray_to_wad, sol_ray_to_wad, a)
    same(wadray.wad_to_ray, sol_wad_to_ray, a)


@given(a=uint256, b=uint256, c=uint256)
def test_mul_div_ceil_is_solidity(a, b, c):
    same(wadray.mul_div_ceil, sol_mul_div_ceil, a, b, c)


@given(value=uint256, percentage=st.integers(0, 2**16))
def test_domain_percent_mul_is_solidity_where_it_does_not_revert(value, percentage):
    try:
        expected = sol_percent_mul(value, percentage)
    except Revert:
        return  # math.percent_mul does not guard; account values never come near 2**256 / 65535
    assert percent_mul(value, percentage) == expected


@given(a=st.integers(0, 2**127), b=st.integers(1, 2**128))
def test_floor_and_ceil_bracket_half_up(a, b):
    assert wadray.ray_mul_floor(a, b) <= wadray.ray_mul(a, b) <= wadray.ray_mul_ceil(a, b) <= wadray.ray_mul_floor(a, b) + 1


timestamp40 = st.integers(0, 2**40 - 1)
rate = st.one_of(st.integers(0, 2**128 - 1), st.integers(0, 5 * RAY), st.integers(0, UINT256_MAX))


@given(rate=rate, last=timestamp40, elapsed=st.one_of(st.integers(-5, 2 * SPY), st.integers(-(2**40), 2**41)))
@example(rate=0, last=10, elapsed=-1)
@example(rate=UINT256_MAX, last=0, elapsed=1)
@example(rate=RAY, last=0, elapsed=1)
@example(rate=2**256 // 7 + 1, last=0, elapsed=7)  # v3.4's unchecked x wraps to 0; v3.0 reverts
@example(rate=RAY, last=0, elapsed=2)
@example(rate=RAY, last=0, elapsed=3)
def test_interest_is_solidity(rate, last, elapsed):
    now = last + elapsed
    if now < 0:
        return
    same(interest.linear_interest, sol_linear_interest, rate, last, now)
    same(interest.compounded_interest_v30, sol_compounded_v30, rate, last, now)
    same(interest.compounded_interest_v34, sol_compounded_v34, rate, last, now)


@given(rate=st.integers(0, 3 * RAY), t=st.integers(0, 2 * SPY))
def test_compounding_is_between_linear_and_continuous(rate, t):
    linear = interest.linear_interest(rate, 0, t)
    ideal = RAY * math.exp(rate * t / SPY / RAY)
    for fn in (interest.compounded_interest_v30, interest.compounded_interest_v34):
        value = fn(rate, 0, t)
        assert linear <= value <= ideal * (1 + 1e-12) + 1
    # the two formulas expand the same series and differ in where they round: v3.0's per-second cube
    # (rate^3 / year^3, in ray) truncates to 0 at low rates, dropping the third term x^3/6 (x = rate * t)
    x = rate * t / SPY / RAY
    assert abs(interest.compounded_interest_v30(rate, 0, t) - interest.compounded_interest_v34(rate, 0, t)) <= \
        RAY * x**3 / 6 * 1.001 + linear // 10**6


@given(index=st.integers(RAY, 10 * RAY), rate=st.integers(0, 2 * RAY), last=timestamp40, elapsed=st.integers(0, 3 * SPY))
def test_normalized_indexes_follow_reserve_logic(index, rate, last, elapsed):
    now = last + elapsed
    income = interest.normalized_income(index, rate, last, now)
    debt30 = interest.normalized_debt(index, rate, last, now)
    debt34 = interest.normalized_debt(index, rate, last, now, interest.compounded_interest_v34)
    if elapsed == 0:  # touched this second: the stored index, whatever the rate
        assert income == debt30 == debt34 == index
    else:
        assert income == sol_ray_mul(sol_linear_interest(rate, last, now), index)
        assert debt30 == sol_ray_mul(sol_compounded_v30(rate, last, now), index)
        assert debt34 == sol_ray_mul(sol_compounded_v34(rate, last, now), index)
    assert index <= income <= debt30 or rate == 0


@given(principal=st.integers(0, 10**30), stable_rate=st.integers(0, RAY), last=timestamp40, elapsed=st.integers(0, SPY))
def test_stable_debt_balance_is_stable_debt_token(principal, stable_rate, last, elapsed):
    got = interest.stable_debt_balance(principal, stable_rate, last, last + elapsed)
    expected = 0 if principal == 0 else sol_ray_mul(principal, sol_compounded_v30(stable_rate, last, last + elapsed))
    assert got == expected


# Account math. Reserves with 0 decimals and index RAY keep the figures readable by hand.
def cfg(ltv: int, lt: int, decimals: int = 0, emode: int = 0, virtual_acc: bool = True) -> int:
    return ltv | lt << 16 | decimals << 48 | emode << 168 | int(virtual_acc) << 252


def reserve(rid: int, configuration: int, index: int = RAY, rate: int = 0, last: int = 1000) -> ReserveState:
    return ReserveState(rid, configuration, index, rate, index, rate, last)


def market(revision: int, reserves, prices, emodes=None, emode_prices=None) -> MarketState:
    return MarketState(rules_for_revision(revision), tuple(reserves), tuple(prices), emodes or {}, emode_prices or {})


def user(collateral: dict[int, int], debt: dict[int, int], emode: int = 0, stable=None) -> UserState:
    ids = sorted(set(collateral) | set(debt))
    config = 0
    for rid in collateral:
        config |= 2 << (2 * rid)
    for rid in debt:
        config |= 1 << (2 * rid)
    stables = tuple((stable or {}).get(rid) for rid in ids) if stable else ()
    return UserState(config, emode, tuple(ids), tuple(collateral.get(r, 0) for r in ids),
                     tuple(debt.get(r, 0) for r in ids), stables)


def test_unknown_revisions_are_refused():
    for revision in (None, 0, 11, 12, 99):
        with pytest.raises(UnsupportedRevision, match="not one whose account math"):
            rules_for_revision(revision)
    assert sorted(REVISIONS) == list(range(1, 11))


def test_no_position_is_zero_with_infinite_health():
    m = market(1, [reserve(0, cfg(8000, 8250))], [10**8])
    assert account_data(market_at(m, 1000), UserState(0, 0), "u") == AccountData("u", 0, 0, 0, 0, 0, UINT256_MAX)


def test_v33_truncates_the_average_threshold_and_v35_does_not():
    reserves = [reserve(0, cfg(8000, 8250)), reserve(1, cfg(7000, 7500)), reserve(2, cfg(7500, 8000))]
    u = user({0: 1000, 1: 333}, {2: 1000})
    prices = [10**8] * 3
    weighted = 1000 * 10**8 * 8250 + 333 * 10**8 * 7500
    total = 1333 * 10**8
    for revision in (1, 7, 8):
        acc = account_data(market_at(market(revision, reserves, prices), 1000), u)
        assert acc.liquidation_threshold == weighted // total == 8062
        assert acc.health_factor == wadray.wad_div(percent_mul(total, 8062), 1000 * 10**8) == 1_074_664_600_000_000_000
    for revision in (9, 10):
        acc = account_data(market_at(market(revision, reserves, prices), 1000), u)
        assert acc.health_factor == wadray.wad_div(weighted, 1000 * 10**8) // 10_000 == 1_074_750_000_000_000_000
    assert acc.collateral_base == total
    assert acc.ltv == (1000 * 8000 + 333 * 7000) * 10**8 // total


def test_v35_rounds_collateral_down_and_debt_up():
    index = RAY + RAY // 2 + 1  # 1.5 + 1e-27: x1 rounds half up to 2 under the old rules
    reserves = [reserve(0, cfg(8000, 8250), index=index), reserve(1, cfg(8000, 8250), index=index)]
    u = user({0: 1}, {1: 1})
    old = account_data(market_at(market(8, reserves, [3, 3]), 1000), u)
    new = account_data(market_at(market(9, reserves, [3, 3]), 1000), u)
    assert (old.collateral_base, old.debt_base) == (2 * 3, 2 * 3)
    assert (new.collateral_base, new.debt_base) == (1 * 3, 2 * 3)
    # the debt's value in base rounds up too: 1 wei of a 2-decimal token at price 150 is 1.5 -> 2
    reserves = [reserve(0, cfg(8000, 8250)), reserve(1, cfg(8000, 8250, decimals=2))]
    assert account_data(market_at(market(9, reserves, [100, 150]), 1000), user({0: 10}, {1: 1})).debt_base == 2
    assert account_data(market_at(market(8, reserves, [100, 150]), 1000), user({0: 10}, {1: 1})).debt_base == 1


def test_v36_counts_collateral_with_zero_threshold():
    reserves = [reserve(0, cfg(0, 0)), reserve(1, cfg(8000, 8000)), reserve(2, cfg(8000, 8000))]
    u = user({0: 500, 1: 500}, {2: 100})
    v35 = account_data(market_at(market(9, reserves, [1, 1, 1]), 1000), u)
    v36 = account_data(market_at(market(10, reserves, [1, 1, 1]), 1000), u)
    assert (v35.collateral_base, v35.liquidation_threshold, v35.ltv) == (500, 8000, 8000)
    assert (v36.collateral_base, v36.liquidation_threshold, v36.ltv) == (1000, 4000, 4000)
    assert v35.health_factor == v36.health_factor == 4 * WAD


def test_emode_v30_uses_the_category_threshold_and_price_source():
    reserves = [reserve(0, cfg(7500, 8000, emode=1)), reserve(1, cfg(7700, 8000, emode=1)), reserve(2, cfg(8000, 8250))]
    cat = EModeCategory(1, 9300, 9500, price_source="0x" + "11" * 20)
    m = market(1, reserves, [99, 100, 2000], {1: cat}, {1: 101})
    plain = account_data(market_at(m, 1000), user({0: 100, 2: 1}, {1: 50}))
    inside = account_data(market_at(m, 1000), user({0: 100, 2: 1}, {1: 50}, emode=1))
    assert (plain.collateral_base, plain.debt_base) == (100 * 99 + 2000, 50 * 100)
    assert (inside.collateral_base, inside.debt_base) == (100 * 101 + 2000, 50 * 101)  # both priced by the source
    assert inside.liquidation_threshold == (100 * 101 * 9500 + 2000 * 8250) // (100 * 101 + 2000)
    assert inside.ltv == (100 * 101 * 9300 + 2000 * 8000) // (100 * 101 + 2000)


def test_emode_v32_and_later_use_the_collateral_bitmap_and_v36_the_ltvzero_bitmap():
    reserves = [reserve(0, cfg(0, 8000)), reserve(1, cfg(7700, 8000)), reserve(2, cfg(8000, 8250))]
    cat = EModeCategory(1, 9300, 9500, collateral_bitmap=0b011, ltvzero_bitmap=0b010)
    u = user({0: 100, 1: 100, 2: 100}, {1: 10}, emode=1)
    for revision in (5, 9, 10):
        acc = account_data(market_at(market(revision, reserves, [1, 1, 1], {1: cat}), 1000), u)
        assert acc.liquidation_threshold == (9500 + 9500 + 8250) // 3
        if revision < 10:  # LTV 0 stays 0; the others take the category's
            assert acc.ltv == (0 + 9300 + 8000) // 3
        else:  # reserve 0 takes the category's LTV, reserve 1 is zeroed by the ltvzero bitmap
            assert acc.ltv == (9300 + 0 + 8000) // 3


def test_stable_debt_counts_up_to_v31_only():
    reserves = [reserve(0, cfg(8000, 8250)), reserve(1, cfg(8000, 8250))]
    stable = StableDebt(principal=10**6, rate=RAY // 10, last_update=0)
    u = user({0: 10**7}, {1: 10**6}, stable={1: stable})
    at = 365 * 24 * 3600
    grown = interest.stable_debt_balance(10**6, RAY // 10, 0, at)
    assert grown > 1_105_000
    assert account_data(market_at(market(1, reserves, [1, 1]), at), u).debt_base == 10**6 + grown
    assert account_data(market_at(market(5, reserves, [1, 1]), at), u).debt_base == 10**6


def test_interest_accrues_from_the_last_update_to_the_asked_time():
    r = ReserveState(0, cfg(8000, 8250), liquidity_index=RAY, liquidity_rate=RAY // 20,
                     variable_borrow_index=RAY, variable_borrow_rate=RAY // 10, last_update=1000)
    m = market(10, [r, reserve(1, cfg(8000, 8250))], [1, 1])
    u = user({1: 10**9}, {0: 10**8})
    assert account_data(market_at(m, 1000), u).debt_base == 10**8
    later = 1000 + SPY
    expected = wadray.ray_mul_ceil(10**8, interest.normalized_debt(RAY, RAY // 10, 1000, later,
                                                                   interest.compounded_interest_v34))
    assert account_data(market_at(m, later), u).debt_base == expected > 110 * 10**6
    with pytest.raises(MathRevert):  # the chain never computes before the last update
        market_at(m, 999)


def test_v33_refuses_debt_it_cannot_model_but_not_collateral():
    reserves = [reserve(0, cfg(8000, 8250)), reserve(1, cfg(8000, 8250, virtual_acc=False))]
    m = market_at(market(7, reserves, [1, 1]), 1000)
    with pytest.raises(NotModelled, match="GHO"):
        account_data(m, user({0: 100}, {1: 10}))
    assert account_data(m, user({0: 100, 1: 5}, {})).collateral_base == 105
    assert account_data(market_at(market(8, reserves, [1, 1]), 1000), user({0: 100}, {1: 10})).debt_base == 10


def test_a_dropped_reserve_is_skipped():
    m = market(1, [reserve(0, cfg(8000, 8250)), None], [1, 0])
    u = UserState(config=2 | 1 << 2, emode=0, reserve_ids=(0, 1), scaled_collateral=(100, 0), scaled_debt=(0, 50))
    assert account_data(market_at(m, 1000), u).debt_base == 0


def test_a_hundred_thousand_users_fit_in_300_mb():
    """Measured on 20k typical users (three reserves, 18-decimal scaled balances), scaled up 5x."""
    m = market(10, [reserve(i, cfg(8000, 8250, decimals=18)) for i in range(4)], [10**8] * 4)
    tracemalloc.start()
    try:
        users = {}
        for n in range(20_000):
            u = user({0: 10**21 + n, 1: 5 * 10**20 + n}, {2: 3 * 10**20 + n})
            users["0x" + f"{n:040x}"] = u
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size * 5 < 300 * 2**20, f"{size * 5 / 2**20:.0f} MB for 100k users"
    mirror = Mirror(1, 1000, "pool", "oracle", m, ("a", "b", "c", "d"), users)
    accounts = mirror.accounts(list(users)[:3])
    assert [a.collateral_base for a in accounts] == [(15 * 10**20 + 2 * n) * 10**8 // 10**18 for n in range(3)]
    assert mirror.account("0x" + "0" * 40, timestamp=1000 + SPY).health_factor == accounts[0].health_factor
