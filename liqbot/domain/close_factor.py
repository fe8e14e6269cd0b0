"""How much of a reserve's debt one liquidation may repay, by the deployed Pool's rules.

v3.0-v3.2 (core-v3 1.19, the devnet): 50% of the user's debt in that reserve while HF > 0.95, 100% at
or below. v3.3 and later: the whole reserve debt, unless the reserve's collateral and debt are both at
least MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD and HF > 0.95, where the repayment is capped at 50% of the
user's *total* debt; and a partial liquidation that leaves less than MIN_LEFTOVER_BASE of the debt or
of the collateral reverts ('103' on v3.3, the custom error MustNotLeaveDust() from v3.4: domain/reverts.py).
"""

from __future__ import annotations

from enum import Enum

from liqbot.domain.math import percent_mul
from liqbot.domain.units import BPS

CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16
DEFAULT_CLOSE_FACTOR = 5_000
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2_000 * 10**8
MIN_LEFTOVER_BASE = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD // 2
# PoolInstance.POOL_REVISION of aave-v3-origin v3.3.0; v3.2.0 / v3.2.1 are 5 / 6 and keep the v3.0 rules.
FIRST_V33_REVISION = 7


class Rules(Enum):
    V30 = "v3.0"  # v3.0 - v3.2 (revisions 1-6)
    V33 = "v3.3"  # v3.3 and later (revision 7 on)

    @classmethod
    def for_revision(cls, revision: int | None) -> Rules:
        return cls.V33 if revision is not None and revision >= FIRST_V33_REVISION else cls.V30


def max_liquidatable_debt(
    rules: Rules, *, reserve_debt: int, health_factor: int, debt_price: int, debt_unit: int,
    reserve_collateral_base: int, total_debt_base: int, base_threshold: int = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD,
) -> int:
    """The most of `reserve_debt` (token units) the Pool lets one liquidation repay."""
    if rules is Rules.V30:
        close = DEFAULT_CLOSE_FACTOR if health_factor > CLOSE_FACTOR_HF_THRESHOLD else BPS
        return percent_mul(reserve_debt, close)
    reserve_debt_base = reserve_debt * debt_price // debt_unit
    if (reserve_collateral_base >= base_threshold and reserve_debt_base >= base_threshold
            and health_factor > CLOSE_FACTOR_HF_THRESHOLD):
        default_base = percent_mul(total_debt_base, DEFAULT_CLOSE_FACTOR)
        if reserve_debt_base > default_base:
            return default_base * debt_unit // debt_price
    return reserve_debt


def leaves_dust(
    rules: Rules, *, debt_before: int, debt_repaid: int, debt_price: int, debt_unit: int,
    collateral_before: int, collateral_taken: int, collateral_price: int, collateral_unit: int,
    min_leftover_base: int = MIN_LEFTOVER_BASE,
) -> bool:
    """v3.3+: a partial liquidation must leave at least MIN_LEFTOVER_BASE of debt and of collateral.
    `collateral_taken` includes the protocol fee."""
    if rules is Rules.V30 or debt_repaid >= debt_before or collateral_taken >= collateral_before:
        return False
    debt_left = (debt_before - debt_repaid) * debt_price // debt_unit
    coll_left = (collateral_before - collateral_taken) * collateral_price // collateral_unit
    return debt_left < min_leftover_base or coll_left < min_leftover_base
