"""Aave's fixed-point helpers, bit-for-bit (PercentageMath rounds half up)."""

from liqbot.domain.units import BPS

HALF_BPS = BPS // 2


def percent_mul(value: int, percentage: int) -> int:
    return (value * percentage + HALF_BPS) // BPS


def percent_div(value: int, percentage: int) -> int:
    return (value * BPS + percentage // 2) // percentage
