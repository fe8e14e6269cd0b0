"""Which liquidation to send: the collateral/debt pair and the amount (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from liqbot.domain.units import UINT256_MAX, value_base


@dataclass(frozen=True, slots=True)
class ReservePosition:
    """One reserve of one user, with what the decision needs of the reserve."""

    asset: str
    decimals: int
    price: int  # base-currency units per whole token
    collateral: int  # aToken balance, token units
    debt: int  # variable + stable debt, token units
    collateral_enabled: bool
    liquidation_threshold: int  # bps
    liquidation_bonus: int  # bps, e.g. 10500
    active: bool = True
    paused: bool = False

    @property
    def collateral_base(self) -> int:
        return value_base(self.collateral, self.price, self.decimals)

    @property
    def debt_base(self) -> int:
        return value_base(self.debt, self.price, self.decimals)

    @property
    def seizable(self) -> bool:
        """Aave reverts a liquidation of collateral that is paused, inactive, not enabled, or has LT 0."""
        return (self.collateral > 0 and self.collateral_enabled and self.liquidation_threshold > 0
                and self.active and not self.paused)

    @property
    def repayable(self) -> bool:
        return self.debt > 0 and self.active and not self.paused


@dataclass(frozen=True, slots=True)
class LiquidationPlan:
    collateral_asset: str
    debt_asset: str
    debt_to_cover: int  # token units of the debt asset; UINT256_MAX lets the Pool take the most allowed


def simple_plan(positions: Sequence[ReservePosition]) -> LiquidationPlan | None:
    """The largest debt against the largest seizable collateral, covering what the close factor allows."""
    collaterals = [p for p in positions if p.seizable]
    debts = [p for p in positions if p.repayable]
    if not collaterals or not debts:
        return None
    coll = max(collaterals, key=lambda p: (p.collateral_base, p.asset))
    debt = max(debts, key=lambda p: (p.debt_base, p.asset))
    return LiquidationPlan(coll.asset, debt.asset, UINT256_MAX)
