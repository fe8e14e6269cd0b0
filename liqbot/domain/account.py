"""GenericLogic.calculateUserAccountData off chain, exactly: every user's collateral, debt, LTV,
liquidation threshold and health factor from plain state (reserves, indexes, rates, prices, scaled
balances) at any timestamp, as the deployed Pool revision computes them.

Why per revision: the versions round differently, and a liquidation bot that is one wei out on a
health factor of 0.99999 either misses a liquidation or sends one that reverts.
- r1-4 (v3.0.x, v3.1): stable debt; e-mode membership is the asset's category in its configuration,
  and a category may carry its own price source, which then prices every asset of the category.
- r5-6 (v3.2): no stable debt; e-mode membership is the category's collateral bitmap; no price source.
- r7 (v3.3): as v3.2, but a reserve without virtual accounting (GHO) is valued by its debt token's
  `balanceOf` (a discount applies): not modelled, `account_data` raises for it.
- r8 (v3.4): the compounding is rewritten (x = rate * t; see interest.py).
- r9 (v3.5): aToken balances round down, debt up, debt value in base rounds up; the health factor is
  the weighted sum of thresholds over the debt, no longer percentMul of the truncated average.
- r10 (v3.6): collateral counts even with a liquidation threshold of 0; an e-mode category can zero
  an asset's LTV (ltvzero bitmap).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from liqbot.domain.health import AccountData
from liqbot.domain.interest import (
    Compounding,
    compounded_interest_v30,
    compounded_interest_v34,
    normalized_debt,
    normalized_income,
    stable_debt_balance,
)
from liqbot.domain.math import percent_mul
from liqbot.domain.units import BPS, UINT256_MAX
from liqbot.domain.wadray import mul_div_ceil, percent_mul_floor, ray_mul, ray_mul_ceil, ray_mul_floor, wad_div
from liqbot.errors import LiqbotError


class UnsupportedRevision(LiqbotError):
    """The Pool runs a revision whose account math we have not checked against its source."""


class NotModelled(LiqbotError):
    """The account touches something the mirror cannot compute exactly (e.g. v3.3's GHO discount)."""


@dataclass(frozen=True, slots=True)
class AccountRules:
    """How one Pool revision computes account data (see the module docstring)."""

    revision: int
    version: str
    stable_debt: bool  # StableDebtToken balances count as debt
    emode_by_asset_category: bool  # r1-4: membership from the asset's configuration; else the collateral bitmap
    emode_price_source: bool  # r1-4: a category's own price source prices its assets
    compounding: Compounding
    exact_rounding: bool  # r9+: floor/ceil balances, debt value rounded up, HF from the weighted sum
    collateral_needs_threshold: bool  # r1-9: collateral with LT 0 is ignored
    ltvzero_bitmap: bool  # r10: the category's ltvzero bitmap zeroes an asset's LTV
    debt_balance_of_without_virtual_acc: bool  # r7: GHO's debt is its token's balanceOf


def _rules(revision: int, version: str) -> AccountRules:
    return AccountRules(
        revision=revision, version=version, stable_debt=revision <= 4, emode_by_asset_category=revision <= 4,
        emode_price_source=revision <= 4, compounding=compounded_interest_v34 if revision >= 8 else compounded_interest_v30,
        exact_rounding=revision >= 9, collateral_needs_threshold=revision <= 9, ltvzero_bitmap=revision >= 10,
        debt_balance_of_without_virtual_acc=revision == 7,
    )


# Revisions read from the sources: core-v3 1.19 (r1) and aave-v3-origin's tags v3.1.0 .. v3.6.0. r2-3 are
# v3.0.1 / v3.0.2 instances, between r1 and r4 whose GenericLogic, MathUtils and WadRayMath are identical.
# r11 (v3.7) changes the e-mode LTV rule (isolated categories): not here until it is checked.
REVISIONS: Mapping[int, AccountRules] = {
    r: _rules(r, v) for r, v in
    ((1, "3.0"), (2, "3.0.1"), (3, "3.0.2"), (4, "3.1"), (5, "3.2.0"), (6, "3.2.1"), (7, "3.3"), (8, "3.4"), (9, "3.5"),
     (10, "3.6"))
}


def rules_for_revision(revision: int | None) -> AccountRules:
    rules = REVISIONS.get(revision) if revision is not None else None
    if rules is None:
        known = ", ".join(str(r) for r in REVISIONS)
        raise UnsupportedRevision(f"Pool revision {revision} is not one whose account math liqbot reproduces (known: {known})")
    return rules


# ReserveConfiguration's packed fields, the same in every revision (the e-mode byte is used up to v3.1).
def config_ltv(configuration: int) -> int:
    return configuration & 0xFFFF


def config_liquidation_threshold(configuration: int) -> int:
    return (configuration >> 16) & 0xFFFF


def config_decimals(configuration: int) -> int:
    return (configuration >> 48) & 0xFF


def config_emode_category(configuration: int) -> int:
    return (configuration >> 168) & 0xFF


def config_virtual_acc_active(configuration: int) -> bool:
    return bool((configuration >> 252) & 1)


@dataclass(frozen=True, slots=True)
class ReserveState:
    """What `Pool.getReserveData` says of a reserve that account math needs."""

    id: int
    configuration: int
    liquidity_index: int
    liquidity_rate: int
    variable_borrow_index: int
    variable_borrow_rate: int
    last_update: int


@dataclass(frozen=True, slots=True)
class EModeCategory:
    id: int
    ltv: int
    liquidation_threshold: int
    price_source: str | None = None  # r1-4: an asset the oracle prices for the whole category
    collateral_bitmap: int = 0  # r5+: bit `reserve id` = the reserve is collateral in this category
    ltvzero_bitmap: int = 0  # r10+: bit `reserve id` = LTV 0 in this category


@dataclass(frozen=True, slots=True)
class StableDebt:
    """A user's stable debt in one reserve (v3.0-v3.1): principal, own rate, last update."""

    principal: int
    rate: int
    last_update: int


@dataclass(frozen=True, slots=True)
class UserState:
    """One user, compactly: the reserves whose configuration bits are set, ascending, and the scaled
    balances of each, in tuples aligned with `reserve_ids` (no per-user dicts: 100k users stay small)."""

    config: int  # getUserConfiguration: bit 2*id borrowing, bit 2*id+1 collateral
    emode: int
    reserve_ids: tuple[int, ...] = ()
    scaled_collateral: tuple[int, ...] = ()  # aToken.scaledBalanceOf
    scaled_debt: tuple[int, ...] = ()  # variableDebtToken.scaledBalanceOf
    stable: tuple[StableDebt | None, ...] = ()  # empty, or one per reserve id (v3.0-v3.1)


@dataclass(frozen=True, slots=True)
class MarketState:
    """The market at one block: reserves and oracle prices indexed by reserve id (None / 0 for gaps)."""

    rules: AccountRules
    reserves: tuple[ReserveState | None, ...]
    prices: tuple[int, ...]
    emodes: Mapping[int, EModeCategory]
    emode_prices: Mapping[int, int]  # r1-4: the oracle's price of each category's price source


@dataclass(frozen=True, slots=True)
class MarketAt:
    """A market with its indexes brought to `timestamp`, computed once for every user."""

    market: MarketState
    timestamp: int
    income: tuple[int, ...]  # normalized income by reserve id
    debt_index: tuple[int, ...]  # normalized variable debt by reserve id
    debt_balance_of: frozenset[int]  # reserve ids whose debt is balanceOf (r7 without virtual accounting)


def market_at(market: MarketState, timestamp: int) -> MarketAt:
    income, debt = [], []
    compounding = market.rules.compounding
    for r in market.reserves:
        if r is None:
            income.append(0)
            debt.append(0)
            continue
        income.append(normalized_income(r.liquidity_index, r.liquidity_rate, r.last_update, timestamp))
        debt.append(normalized_debt(r.variable_borrow_index, r.variable_borrow_rate, r.last_update, timestamp, compounding))
    unmodelled = frozenset(
        r.id for r in market.reserves
        if r is not None and market.rules.debt_balance_of_without_virtual_acc and not config_virtual_acc_active(r.configuration)
    )
    return MarketAt(market, timestamp, tuple(income), tuple(debt), unmodelled)


_NO_CATEGORY = EModeCategory(0, 0, 0)


def account_data(at: MarketAt, user: UserState, address: str = "") -> AccountData:
    """`Pool.getUserAccountData(address)` at `at.timestamp` (PoolLogic.executeGetUserAccountData)."""
    if user.config == 0:
        return AccountData(address, 0, 0, 0, 0, 0, UINT256_MAX)
    market, rules = at.market, at.market.rules
    category = market.emodes[user.emode] if user.emode else _NO_CATEGORY
    emode_price = market.emode_prices.get(user.emode, 0) if user.emode and rules.emode_price_source else 0
    reserves, prices = market.reserves, market.prices
    total_collateral = total_debt = weighted_ltv = weighted_lt = 0
    for i, rid in enumerate(user.reserve_ids):
        bits = (user.config >> (2 * rid)) & 3
        reserve = reserves[rid] if rid < len(reserves) else None
        if not bits or reserve is None:  # a dropped reserve leaves a gap the Pool skips too
            continue
        cfg = reserve.configuration
        unit = 10 ** config_decimals(cfg)
        if rules.emode_by_asset_category:
            in_emode = user.emode != 0 and config_emode_category(cfg) == user.emode
            price = emode_price if emode_price and in_emode else prices[rid]
        else:
            in_emode = user.emode != 0 and (category.collateral_bitmap >> rid) & 1 == 1
            price = prices[rid]

        threshold = config_liquidation_threshold(cfg)
        if bits & 2 and (threshold or not rules.collateral_needs_threshold):
            if rules.exact_rounding:
                value = ray_mul_floor(user.scaled_collateral[i], at.income[rid]) * price // unit
            else:
                value = ray_mul(user.scaled_collateral[i], at.income[rid]) * price // unit
            total_collateral += value
            ltv = config_ltv(cfg)
            if rules.ltvzero_bitmap:  # ValidationLogic.getUserReserveLtv
                if in_emode:
                    ltv = 0 if (category.ltvzero_bitmap >> rid) & 1 else category.ltv
            elif ltv and in_emode:
                ltv = category.ltv
            weighted_ltv += value * ltv
            weighted_lt += value * (category.liquidation_threshold if in_emode else threshold)

        if bits & 1:
            if rid in at.debt_balance_of:
                raise NotModelled(f"reserve {rid} has no virtual accounting: revision 7 values its debt by "
                                  "balanceOf (GHO's discount), which the mirror does not model")
            scaled = user.scaled_debt[i]
            if rules.exact_rounding:
                total_debt += mul_div_ceil(ray_mul_ceil(scaled, at.debt_index[rid]), price, unit)
            else:
                debt = ray_mul(scaled, at.debt_index[rid]) if scaled else 0
                if rules.stable_debt and user.stable and (stable := user.stable[i]) is not None:
                    debt += stable_debt_balance(stable.principal, stable.rate, stable.last_update, at.timestamp)
                total_debt += debt * price // unit

    avg_ltv = weighted_ltv // total_collateral if total_collateral else 0
    avg_lt = weighted_lt // total_collateral if total_collateral else 0
    if total_debt == 0:
        health = UINT256_MAX
    elif rules.exact_rounding:
        health = wad_div(weighted_lt, total_debt) // BPS
    else:  # up to v3.4 the average threshold is truncated to whole bps first
        health = wad_div(percent_mul(total_collateral, avg_lt), total_debt)
    borrowable = percent_mul_floor(total_collateral, avg_ltv) if rules.exact_rounding else percent_mul(total_collateral, avg_ltv)
    available = borrowable - total_debt if borrowable > total_debt else 0
    return AccountData(address, total_collateral, total_debt, available, avg_lt, avg_ltv, health)
