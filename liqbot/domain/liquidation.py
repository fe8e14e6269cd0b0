"""Which liquidation to send: every (collateral, debt) pair sized by the Pool's rules and our
inventory, priced, and the most profitable one kept; or the reason there is none (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from liqbot.domain.close_factor import Rules, leaves_dust, max_liquidatable_debt
from liqbot.domain.math import percent_div, percent_mul
from liqbot.domain.units import WAD, value_base


@dataclass(frozen=True, slots=True)
class ReservePosition:
    """One reserve of one user, with what the decision needs of the reserve."""

    asset: str
    decimals: int
    price: int  # base-currency units per whole token
    collateral: int  # aToken balance, token units
    debt: int  # debt the Pool counts for liquidation, token units
    collateral_enabled: bool
    liquidation_threshold: int  # bps
    liquidation_bonus: int  # bps, e.g. 10500
    protocol_fee: int = 0  # bps of the bonus
    active: bool = True
    paused: bool = False

    @property
    def unit(self) -> int:
        return 10**self.decimals

    @property
    def collateral_base(self) -> int:
        return value_base(self.collateral, self.price, self.decimals)

    @property
    def debt_base(self) -> int:
        return value_base(self.debt, self.price, self.decimals)

    @property
    def seizable(self) -> bool:
        """Aave reverts on collateral that is paused, inactive, not enabled, or has LT 0 (frozen is fine)."""
        return (self.collateral > 0 and self.collateral_enabled and self.liquidation_threshold > 0
                and self.active and not self.paused)

    @property
    def repayable(self) -> bool:
        return self.debt > 0 and self.active and not self.paused


@dataclass(frozen=True, slots=True)
class Seizure:
    collateral: int  # to the liquidator, collateral units
    protocol_fee: int  # to the treasury, collateral units
    debt_repaid: int  # debt units


def seize(debt_to_cover: int, coll: ReservePosition, debt: ReservePosition) -> Seizure:
    """LiquidationLogic._calculateAvailableCollateralToLiquidate, in integers."""
    base_collateral = debt.price * debt_to_cover * coll.unit // (coll.price * debt.unit)
    max_collateral = percent_mul(base_collateral, coll.liquidation_bonus)
    if max_collateral > coll.collateral:
        amount = coll.collateral
        repaid = percent_div(coll.price * amount * debt.unit // (debt.price * coll.unit), coll.liquidation_bonus)
    else:
        amount, repaid = max_collateral, debt_to_cover
    fee = 0
    if coll.protocol_fee:
        bonus = amount - percent_div(amount, coll.liquidation_bonus)
        fee = percent_mul(bonus, coll.protocol_fee)
    return Seizure(amount - fee, fee, repaid)


@dataclass(frozen=True, slots=True)
class Candidate:
    collateral_asset: str
    debt_asset: str
    debt_to_cover: int  # what to pass to liquidationCall
    seizure: Seizure
    gross_profit_base: int  # collateral received minus debt repaid, before gas

    def profit_base(self, gas_cost_base: int) -> int:
        return self.gross_profit_base - gas_cost_base


@dataclass(frozen=True, slots=True)
class Decision:
    plan: Candidate | None
    reason: str  # why there is no plan ("" when there is one)
    profit_base: int = 0


def candidates(
    positions: Sequence[ReservePosition], *, health_factor: int, total_debt_base: int, rules: Rules,
    inventory: Mapping[str, int],
) -> list[Candidate]:
    """Every pair the Pool would accept, sized by the close factor, the collateral and our inventory."""
    out = []
    for debt in (p for p in positions if p.repayable):
        cap = max_liquidatable_debt(rules, reserve_debt=debt.debt, health_factor=health_factor, debt_price=debt.price,
                                    debt_unit=debt.unit, reserve_collateral_base=0, total_debt_base=total_debt_base)
        for coll in (p for p in positions if p.seizable):
            if rules is Rules.V33:  # the v3.3 cap looks at this pair's collateral too
                cap = max_liquidatable_debt(rules, reserve_debt=debt.debt, health_factor=health_factor,
                                            debt_price=debt.price, debt_unit=debt.unit,
                                            reserve_collateral_base=coll.collateral_base, total_debt_base=total_debt_base)
            cover = min(cap, inventory.get(debt.asset, 0))
            if cover <= 0:
                continue
            s = seize(cover, coll, debt)
            taken = s.collateral + s.protocol_fee
            if leaves_dust(rules, debt_before=debt.debt, debt_repaid=s.debt_repaid, debt_price=debt.price,
                           debt_unit=debt.unit, collateral_before=coll.collateral, collateral_taken=taken,
                           collateral_price=coll.price, collateral_unit=coll.unit):
                continue
            gross = value_base(s.collateral, coll.price, coll.decimals) - value_base(s.debt_repaid, debt.price, debt.decimals)
            out.append(Candidate(coll.asset, debt.asset, s.debt_repaid, s, gross))
    return out


def decide(
    positions: Sequence[ReservePosition], *, health_factor: int, total_debt_base: int, rules: Rules,
    inventory: Mapping[str, int], gas_cost_base: int, min_profit_base: int,
) -> Decision:
    """The most profitable liquidation, or why none is worth sending."""
    if not (health_factor < WAD and total_debt_base > 0):
        return Decision(None, "no longer liquidatable")
    if not any(p.seizable for p in positions) or not any(p.repayable for p in positions):
        return Decision(None, "no seizable collateral or repayable debt")
    if not any(inventory.get(p.asset, 0) > 0 for p in positions if p.repayable):
        return Decision(None, "no inventory")
    found = candidates(positions, health_factor=health_factor, total_debt_base=total_debt_base, rules=rules,
                       inventory=inventory)
    if not found:
        return Decision(None, "would leave dust")
    best = max(found, key=lambda c: (c.gross_profit_base, c.collateral_asset, c.debt_asset))
    profit = best.profit_base(gas_cost_base)
    if profit < min_profit_base:
        return Decision(None, "unprofitable", profit)
    return Decision(best, "", profit)


def gas_cost_base(gas: int, gas_price_wei: int, native_price: int) -> int:
    """Gas in base-currency units: gas x price (wei) x native token price (base units per 1e18 wei)."""
    return gas * gas_price_wei * native_price // WAD
