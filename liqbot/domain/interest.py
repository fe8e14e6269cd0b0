"""Interest accrual as Aave computes it (MathUtils, ReserveLogic, StableDebtToken), in integers.

Indexes on chain only move when someone touches the reserve; between touches every balance is the
stored index grown by the stored rate up to `now`. Reproducing that lets a mirror read a market once
and know every balance at any later second without asking the node again.
"""

from __future__ import annotations

from collections.abc import Callable

from liqbot.domain.units import RAY, UINT256_MAX
from liqbot.domain.wadray import MathRevert, ray_mul

SECONDS_PER_YEAR = 365 * 24 * 3600  # MathUtils ignores leap years

Compounding = Callable[[int, int, int], int]


def _checked(value: int, what: str) -> int:
    if value > UINT256_MAX:
        raise MathRevert(f"{what} overflow")
    return value


def _elapsed(last_update: int, now: int) -> int:
    if now < last_update:  # checked subtraction: the chain never asks about the past
        raise MathRevert(f"timestamp {now} is before the last update {last_update}")
    return now - last_update


def linear_interest(rate: int, last_update: int, now: int) -> int:
    """MathUtils.calculateLinearInterest: what a supplier earns (ray)."""
    result = _checked(rate * _elapsed(last_update, now), "linear interest")
    return _checked(RAY + result // SECONDS_PER_YEAR, "linear interest")


def compounded_interest_v30(rate: int, last_update: int, now: int) -> int:
    """MathUtils.calculateCompoundedInterest up to v3.3: the binomial expansion to its third term."""
    exp = _elapsed(last_update, now)
    if exp == 0:
        return RAY
    exp_minus_one = exp - 1
    exp_minus_two = exp - 2 if exp > 2 else 0
    base_power_two = ray_mul(rate, rate) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    base_power_three = ray_mul(base_power_two, rate) // SECONDS_PER_YEAR
    second = _checked(_checked(exp * exp_minus_one, "second term") * base_power_two, "second term") // 2
    third = _checked(_checked(_checked(exp * exp_minus_one, "third term") * exp_minus_two, "third term")
                     * base_power_three, "third term") // 6
    linear = _checked(rate * exp, "first term") // SECONDS_PER_YEAR
    return _checked(_checked(_checked(RAY + linear, "sum") + second, "sum") + third, "sum")


def compounded_interest_v34(rate: int, last_update: int, now: int) -> int:
    """MathUtils.calculateCompoundedInterest from v3.4: the same three terms from x = rate * t,
    in an unchecked block (sums wrap; only rayMul's own guard can revert)."""
    exp = _elapsed(last_update, now)
    if exp == 0:
        return RAY
    x = (rate * exp & UINT256_MAX) // SECONDS_PER_YEAR
    inner = (x // 2 + ray_mul(x, x // 6)) & UINT256_MAX
    return (RAY + x + ray_mul(x, inner)) & UINT256_MAX


def normalized_income(liquidity_index: int, liquidity_rate: int, last_update: int, now: int) -> int:
    """ReserveLogic.getNormalizedIncome: the stored index when the reserve was touched this second."""
    if last_update == now:
        return liquidity_index
    return ray_mul(linear_interest(liquidity_rate, last_update, now), liquidity_index)


def normalized_debt(variable_borrow_index: int, variable_rate: int, last_update: int, now: int,
                    compounded: Compounding = compounded_interest_v30) -> int:
    """ReserveLogic.getNormalizedDebt, with the deployed version's compounding."""
    if last_update == now:
        return variable_borrow_index
    return ray_mul(compounded(variable_rate, last_update, now), variable_borrow_index)


def stable_debt_balance(principal: int, stable_rate: int, last_update: int, now: int) -> int:
    """StableDebtToken.balanceOf (v3.0-v3.1): the principal compounded at the user's own rate
    since the user's last stable-debt action."""
    if principal == 0:
        return 0
    return ray_mul(principal, compounded_interest_v30(stable_rate, last_update, now))
