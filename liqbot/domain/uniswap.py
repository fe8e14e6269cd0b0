"""Uniswap v3 price math in integers: the pool price an oracle implies, and what a swap needs to reach it.

Why here: the devnet sets its pools to the oracle and moves them with it, and the bot judges a flash
liquidation's swap against the same numbers; float math would be a few wei off on 18-decimal tokens.
"""

from __future__ import annotations

from math import isqrt

Q96 = 2**96
FEE_UNITS = 1_000_000  # Uniswap fees are in hundredths of a bip: 3000 = 0.3%
MIN_SQRT_RATIO = 4295128739  # TickMath bounds: a price outside them cannot be set
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342


def sort_tokens(a: str, b: str) -> tuple[str, str]:
    """token0 is the lower address (compared as numbers, so checksum case does not matter)."""
    if int(a, 16) == int(b, 16):
        raise ValueError(f"a pool needs two different tokens, got {a} twice")
    return (a, b) if int(a, 16) < int(b, 16) else (b, a)


def sqrt_price_x96(usd0: int, usd1: int, decimals0: int, decimals1: int) -> int:
    """sqrtPriceX96 of a token0/token1 pool at the USD prices `usd0`, `usd1` (same unit, e.g. 8 decimals):
    floor(sqrt(p_raw * 2**192)) with p_raw = usd0 / usd1 * 10**(decimals1 - decimals0), raw units of
    token1 per raw unit of token0. Exact: isqrt of the floored quotient is the floor of the real root."""
    if usd0 <= 0 or usd1 <= 0:
        raise ValueError(f"prices must be positive, got {usd0} and {usd1}")
    num, den = usd0 * 2**192, usd1
    if decimals1 >= decimals0:
        num *= 10 ** (decimals1 - decimals0)
    else:
        den *= 10 ** (decimals0 - decimals1)
    root = isqrt(num // den)
    if not MIN_SQRT_RATIO <= root < MAX_SQRT_RATIO:
        raise ValueError(f"price {usd0}/{usd1} is outside Uniswap v3's range")
    return root


def price_ratio_error(sqrt_actual: int, sqrt_target: int) -> float:
    """Relative difference of two pool prices (squares of the sqrt prices); for display and tests only."""
    return (sqrt_actual * sqrt_actual - sqrt_target * sqrt_target) / (sqrt_target * sqrt_target)


def amount_in_to_reach(liquidity: int, sqrt_now: int, sqrt_target: int, fee: int) -> tuple[bool, int]:
    """(zero_for_one, gross amountIn) a swap needs to move a pool with constant active `liquidity` from
    `sqrt_now` to `sqrt_target`, fee included, rounded up (SqrtPriceMath's getAmount0Delta /
    getAmount1Delta; the pool's two-step rounding may take a wei or two more). Holds when no initialized
    tick is crossed, as in a full-range-only pool; the price falls when token0 is sold."""
    if sqrt_target == sqrt_now:
        return False, 0
    zero_for_one = sqrt_target < sqrt_now
    if zero_for_one:
        num = liquidity * Q96 * (sqrt_now - sqrt_target)
        net = -(-num // (sqrt_now * sqrt_target))
    else:
        net = -(-liquidity * (sqrt_target - sqrt_now) // Q96)
    return zero_for_one, -(-net * FEE_UNITS // (FEE_UNITS - fee))
