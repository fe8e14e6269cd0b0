"""Uniswap v3 price math (liqbot/domain/uniswap.py) against exact rationals and the pool's own formulas."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liqbot.domain.uniswap import FEE_UNITS, Q96, amount_in_to_reach, sort_tokens, sqrt_price_x96

prices = st.integers(min_value=10**4, max_value=10**14)  # USD 0.0001 .. 1M, 8 decimals
decimals = st.integers(min_value=0, max_value=18)


def test_token0_is_the_lower_address_whatever_the_case():
    low, high = "0x00000000000000000000000000000000000000aB", "0xA000000000000000000000000000000000000000"
    assert sort_tokens(high, low) == (low, high)
    assert sort_tokens(low, high) == (low, high)
    with pytest.raises(ValueError, match="two different"):
        sort_tokens(low, low.lower())


def test_known_prices():
    assert sqrt_price_x96(10**8, 10**8, 18, 18) == Q96  # DAI/DAI-like: price 1
    assert sqrt_price_x96(10**8, 10**8, 6, 18) == Q96 * 10**6  # USDC/DAI: 1e12 raw DAI per raw USDC
    # WETH (18) / USDC (6) at 2000: 2000e6 raw USDC per 1e18 raw WETH = 2e-9
    weth_usdc = sqrt_price_x96(2000 * 10**8, 10**8, 18, 6)
    assert weth_usdc**2 <= Fraction(2, 10**9) * 2**192 < (weth_usdc + 1) ** 2


@given(prices, prices, decimals, decimals)
def test_sqrt_price_is_the_floor_of_the_exact_root(usd0, usd1, dec0, dec1):
    exact = Fraction(usd0, usd1) * Fraction(10) ** (dec1 - dec0) * 2**192
    got = sqrt_price_x96(usd0, usd1, dec0, dec1)
    assert got**2 <= exact < (got + 1) ** 2


@given(prices, prices, decimals, decimals)
def test_inverting_the_pair_inverts_the_price(usd0, usd1, dec0, dec1):
    forward, backward = sqrt_price_x96(usd0, usd1, dec0, dec1), sqrt_price_x96(usd1, usd0, dec1, dec0)
    # each is floored, so the product is just under 2**192
    assert forward * backward <= 2**192 < (forward + 1) * (backward + 1)


def test_refuses_non_positive_prices():
    with pytest.raises(ValueError, match="positive"):
        sqrt_price_x96(0, 10**8, 18, 6)


def _pool_amount0_up(liquidity: int, a: int, b: int) -> int:
    """SqrtPriceMath.getAmount0Delta(roundUp=true): rounds twice."""
    lo, hi = sorted((a, b))
    inner = -(-(liquidity * Q96 * (hi - lo)) // hi)
    return -(-inner // lo)


def _pool_amount1_up(liquidity: int, a: int, b: int) -> int:
    lo, hi = sorted((a, b))
    return -(-(liquidity * (hi - lo)) // Q96)


def _less_fee(amount_in: int, fee: int) -> int:
    """SwapMath: what of an exact input is left to swap after the fee."""
    return amount_in * (FEE_UNITS - fee) // FEE_UNITS


sqrt_prices = st.integers(min_value=2**80, max_value=2**120)


@given(st.integers(min_value=10**6, max_value=10**30), sqrt_prices, sqrt_prices, st.sampled_from([100, 500, 3000, 10_000]))
def test_amount_in_reaches_the_target_within_the_pools_rounding(liquidity, now, target, fee):
    zero_for_one, gross = amount_in_to_reach(liquidity, now, target, fee)
    if now == target:
        assert gross == 0
        return
    assert zero_for_one == (target < now)  # selling token0 lowers its price
    pool_needs = (_pool_amount0_up if zero_for_one else _pool_amount1_up)(liquidity, now, target)
    # after the fee, at least the exact amount; the pool's double rounding can ask one wei more
    assert pool_needs - 1 <= _less_fee(gross, fee)
    assert _less_fee(gross, fee) <= pool_needs
    # and twice it (what the devnet sends) always reaches the target
    assert _less_fee(2 * gross + 1, fee) >= pool_needs
