"""Aave's WadRayMath (and the floor/ceil helpers v3.5 added), bit for bit, reverts included.

Python integers never overflow, Solidity's uint256 does: every function raises `MathRevert` exactly
where the on-chain assembly reverts, so an off-chain figure is never one the chain could not produce.
Half-up is Aave's default rounding; v3.5+ rounds balances in the protocol's favour (aToken balances
down, debt up) with the Floor / Ceil variants. PercentageMath's half-up pair lives in domain/math.py;
only v3.5's floor variant, which GenericLogic needs for available borrows, is here.
"""

from __future__ import annotations

from liqbot.domain.units import BPS, RAY, UINT256_MAX, WAD

HALF_WAD = WAD // 2
HALF_RAY = RAY // 2
WAD_RAY_RATIO = 10**9


class MathRevert(ArithmeticError):
    """The Solidity code would revert here (overflow, underflow or division by zero)."""


def wad_mul(a: int, b: int) -> int:
    if b and a > (UINT256_MAX - HALF_WAD) // b:
        raise MathRevert("wadMul overflow")
    return (a * b + HALF_WAD) // WAD


def wad_div(a: int, b: int) -> int:
    if b == 0 or a > (UINT256_MAX - b // 2) // WAD:
        raise MathRevert("wadDiv by zero or overflow")
    return (a * WAD + b // 2) // b


def ray_mul(a: int, b: int) -> int:
    if b and a > (UINT256_MAX - HALF_RAY) // b:
        raise MathRevert("rayMul overflow")
    return (a * b + HALF_RAY) // RAY


def ray_div(a: int, b: int) -> int:
    if b == 0 or a > (UINT256_MAX - b // 2) // RAY:
        raise MathRevert("rayDiv by zero or overflow")
    return (a * RAY + b // 2) // b


def ray_mul_floor(a: int, b: int) -> int:
    """v3.5+: aToken balances (TokenMath.getATokenBalance)."""
    if b and a > UINT256_MAX // b:
        raise MathRevert("rayMulFloor overflow")
    return a * b // RAY


def ray_mul_ceil(a: int, b: int) -> int:
    """v3.5+: debt balances (TokenMath.getVTokenBalance)."""
    if b and a > UINT256_MAX // b:
        raise MathRevert("rayMulCeil overflow")
    return -(-a * b // RAY)


def ray_div_floor(a: int, b: int) -> int:
    if b == 0 or a > UINT256_MAX // RAY:
        raise MathRevert("rayDivFloor by zero or overflow")
    return a * RAY // b


def ray_div_ceil(a: int, b: int) -> int:
    if b == 0 or a > UINT256_MAX // RAY:
        raise MathRevert("rayDivCeil by zero or overflow")
    return -(-a * RAY // b)


def ray_to_wad(a: int) -> int:
    b, remainder = divmod(a, WAD_RAY_RATIO)
    return b + 1 if remainder >= WAD_RAY_RATIO // 2 else b


def wad_to_ray(a: int) -> int:
    b = a * WAD_RAY_RATIO
    if b > UINT256_MAX:
        raise MathRevert("wadToRay overflow")
    return b


def mul_div_ceil(a: int, b: int, c: int) -> int:
    """MathUtils.mulDivCeil (v3.5+): a debt's value in base currency, rounded up."""
    if c == 0 or (b and a > UINT256_MAX // b):
        raise MathRevert("mulDivCeil by zero or overflow")
    return -(-a * b // c)


def percent_mul_floor(value: int, percentage: int) -> int:
    """PercentageMath.percentMulFloor (v3.5+): available borrows."""
    if percentage and value > UINT256_MAX // percentage:
        raise MathRevert("percentMulFloor overflow")
    return value * percentage // BPS
