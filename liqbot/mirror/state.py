"""The mirror: one market and its users at one block, in memory (pure; the loader fills it, live.py moves it).

Every health factor comes from the pure account math, at the block's timestamp or any later one: with
no transaction in between, indexes and balances only accrue, so a mirror read at block N answers for
N + k without the node (prices and positions excepted, which only events move).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from liqbot.domain.account import (
    AccountRules,
    EModeCategory,
    MarketAt,
    MarketState,
    ReserveState,
    UserState,
    account_data,
    config_decimals,
    config_emode_category,
    config_liquidation_threshold,
    market_at,
)
from liqbot.domain.health import AccountData
from liqbot.domain.interest import stable_debt_balance
from liqbot.domain.liquidation import ReservePosition
from liqbot.domain.wadray import ray_mul, ray_mul_ceil, ray_mul_floor


class ReserveTokens(NamedTuple):
    a_token: str
    stable_debt_token: str  # the zero address from v3.2 on
    variable_debt_token: str


def config_liquidation_bonus(configuration: int) -> int:
    return (configuration >> 32) & 0xFFFF


def config_active(configuration: int) -> bool:
    return bool((configuration >> 56) & 1)


def config_paused(configuration: int) -> bool:
    return bool((configuration >> 60) & 1)


def config_protocol_fee(configuration: int) -> int:
    return (configuration >> 152) & 0xFFFF


@dataclass
class Mirror:
    block: int
    timestamp: int  # the block's
    pool: str
    oracle: str
    market: MarketState
    assets: tuple[str | None, ...]  # reserve address by id
    users: dict[str, UserState]
    _at: dict[int, MarketAt] = field(default_factory=dict, repr=False)  # indexes per timestamp asked
    tokens: tuple[ReserveTokens | None, ...] = ()  # by reserve id
    emode_bonus: dict[int, int] = field(default_factory=dict)  # category -> liquidation bonus (bps)
    provider: str = ""
    configurator: str = ""

    @property
    def rules(self) -> AccountRules:
        return self.market.rules

    @property
    def revision(self) -> int:
        return self.market.rules.revision

    def at(self, timestamp: int | None = None) -> MarketAt:
        """The reserves' indexes at `timestamp` (default: the block's), computed once per timestamp."""
        ts = self.timestamp if timestamp is None else timestamp
        if ts not in self._at:
            if len(self._at) > 8:
                self._at.clear()
            self._at[ts] = market_at(self.market, ts)
        return self._at[ts]

    def account(self, user: str, timestamp: int | None = None) -> AccountData:
        """`getUserAccountData(user)` as the Pool would answer at `timestamp`; KeyError for a user not loaded."""
        return account_data(self.at(timestamp), self.users[user], user)

    def accounts(self, users: Iterable[str] | None = None, timestamp: int | None = None) -> list[AccountData]:
        at = self.at(timestamp)
        return [account_data(at, self.users[u], u) for u in (self.users if users is None else users)]

    # --- lookups -------------------------------------------------------------------------------------
    def reserve_id(self, asset: str) -> int | None:
        """The reserve id of `asset`, None when it is no reserve of this market."""
        for rid, a in enumerate(self.assets):
            if a == asset:
                return rid
        return None

    def price(self, asset: str) -> int:
        """The oracle's price of `asset` (a reserve, or a v3.0 e-mode category's price source)."""
        rid = self.reserve_id(asset)
        if rid is not None:
            return self.market.prices[rid]
        for c, cat in self.market.emodes.items():
            if cat.price_source == asset:
                return self.market.emode_prices.get(c, 0)
        raise KeyError(f"{asset} is priced by nothing this mirror holds")

    def priced_assets(self) -> list[str]:
        """Every asset whose oracle price the account math reads."""
        sources = [cat.price_source for cat in self.market.emodes.values() if cat.price_source]
        return list(dict.fromkeys([*(a for a in self.assets if a), *sources]))

    def positions(self, user: str, timestamp: int | None = None) -> list[ReservePosition]:
        """What `liquidation.decide` takes, exactly as the Pool computes it at `timestamp`: each reserve the
        user's configuration uses, with its aToken and debt balances (rounded per revision), the price
        the liquidation uses (a v3.0 e-mode category's source inside it) and the e-mode bonus where it applies."""
        at, st = self.at(timestamp), self.users[user]
        market, rules = self.market, self.market.rules
        category = market.emodes.get(st.emode) if st.emode else None
        emode_price = market.emode_prices.get(st.emode, 0) if st.emode and rules.emode_price_source else 0
        out = []
        for i, rid in enumerate(st.reserve_ids):
            bits = (st.config >> (2 * rid)) & 3
            reserve = market.reserves[rid] if rid < len(market.reserves) else None
            asset = self.assets[rid] if rid < len(self.assets) else None
            if not bits or reserve is None or asset is None:
                continue
            cfg = reserve.configuration
            if category is None:
                in_emode = False
            elif rules.emode_by_asset_category:
                in_emode = config_emode_category(cfg) == st.emode
            else:
                in_emode = (category.collateral_bitmap >> rid) & 1 == 1
            scaled_c, scaled_d = st.scaled_collateral[i], st.scaled_debt[i]
            if rules.exact_rounding:
                collateral = ray_mul_floor(scaled_c, at.income[rid])
                debt = ray_mul_ceil(scaled_d, at.debt_index[rid])
            else:
                collateral = ray_mul(scaled_c, at.income[rid])
                debt = ray_mul(scaled_d, at.debt_index[rid])
            if rules.stable_debt and st.stable and (stable := st.stable[i]) is not None:
                debt += stable_debt_balance(stable.principal, stable.rate, stable.last_update, at.timestamp)
            bonus = self.emode_bonus.get(st.emode, 0) if in_emode else 0
            out.append(ReservePosition(
                asset=asset, decimals=config_decimals(cfg), price=emode_price if emode_price and in_emode else market.prices[rid],
                collateral=collateral, debt=debt, collateral_enabled=bool(bits & 2),
                liquidation_threshold=config_liquidation_threshold(cfg), liquidation_bonus=bonus or config_liquidation_bonus(cfg),
                protocol_fee=config_protocol_fee(cfg), active=config_active(cfg), paused=config_paused(cfg),
            ))
        return out

    # --- changes (the live mirror applies events through these) ------------------------------------
    def _changed(self, market: MarketState) -> None:
        self.market = market
        self._at.clear()

    def advance(self, block: int, timestamp: int) -> None:
        """Now at `block`: nothing else changed since the last block applied."""
        if block < self.block or timestamp < self.timestamp:
            raise ValueError(f"block {block} at {timestamp} is before the mirror's {self.block} at {self.timestamp}")
        self.block, self.timestamp = block, timestamp

    def set_price(self, asset: str, price: int) -> bool:
        """The oracle now answers `price` for `asset`; False when nothing here reads that asset's price."""
        prices, emode_prices = list(self.market.prices), dict(self.market.emode_prices)
        found = False
        rid = self.reserve_id(asset)
        if rid is not None:
            prices[rid] = price
            found = True
        for c, cat in self.market.emodes.items():
            if cat.price_source == asset:
                emode_prices[c] = price
                found = True
        if found:
            self._changed(replace(self.market, prices=tuple(prices), emode_prices=emode_prices))
        return found

    def set_reserve(self, asset: str, state: ReserveState | None, tokens: ReserveTokens | None = None,
                    price: int | None = None) -> None:
        """A reserve's data as `getReserveData` now returns it; None drops the reserve (its id becomes a gap)."""
        rid = state.id if state is not None else self.reserve_id(asset)
        if rid is None:
            return
        size = max(rid + 1, len(self.market.reserves))
        reserves = list(self.market.reserves) + [None] * (size - len(self.market.reserves))
        prices = list(self.market.prices) + [0] * (size - len(self.market.prices))
        assets = list(self.assets) + [None] * (size - len(self.assets))
        toks = list(self.tokens) + [None] * (size - len(self.tokens))
        reserves[rid] = state
        assets[rid] = asset if state is not None else None
        if tokens is not None or state is None:
            toks[rid] = tokens
        if price is not None:
            prices[rid] = price
        self.assets, self.tokens = tuple(assets), tuple(toks)
        self._changed(replace(self.market, reserves=tuple(reserves), prices=tuple(prices)))

    def set_rates(self, rid: int, liquidity_rate: int, variable_rate: int, liquidity_index: int, variable_index: int,
                  timestamp: int) -> None:
        """A decoded ReserveDataUpdated: indexes and rates as stored, `timestamp` its block's (updateState ran)."""
        reserve = self.market.reserves[rid]
        if reserve is None:
            return
        reserves = list(self.market.reserves)
        reserves[rid] = replace(reserve, liquidity_index=liquidity_index, liquidity_rate=liquidity_rate,
                                variable_borrow_index=variable_index, variable_borrow_rate=variable_rate, last_update=timestamp)
        self._changed(replace(self.market, reserves=tuple(reserves)))

    def set_category(self, category: EModeCategory, bonus: int, source_price: int | None = None) -> None:
        """An e-mode category as the Pool now returns it (with its source's price when it has one)."""
        emodes, emode_prices = dict(self.market.emodes), dict(self.market.emode_prices)
        emodes[category.id] = category
        self.emode_bonus[category.id] = bonus
        if category.price_source and source_price is not None:
            emode_prices[category.id] = source_price
        elif not category.price_source:
            emode_prices.pop(category.id, None)
        self._changed(replace(self.market, emodes=emodes, emode_prices=emode_prices))
