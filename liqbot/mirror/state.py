"""The mirror: one market and its users at one block, in memory (pure; the loader fills it).

Every health factor comes from the pure account math, at the block's timestamp or any later one: with
no transaction in between, indexes and balances only accrue, so a mirror read at block N answers for
N + k without the node (prices and positions excepted, which only events move).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from liqbot.domain.account import AccountRules, MarketAt, MarketState, UserState, account_data, market_at
from liqbot.domain.health import AccountData


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
