"""What a process needs to act, built once per process (after fork) and reused by every task."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache

from sqlalchemy.orm import sessionmaker

from liqbot.chain.market import MarketInfo, discover_market
from liqbot.chain.rpc import Rpc
from liqbot.chain.sender import Sender
from liqbot.config import Settings, get_settings
from liqbot.store.db import session_factory
from liqbot.store.redis import State

MARKET_REFRESH_SECS = 300.0


@dataclass
class Runtime:
    settings: Settings
    rpc: Rpc
    state: State
    sessions: sessionmaker
    _market: MarketInfo | None = field(default=None, repr=False)
    _market_at: float = 0.0
    _sender: Sender | None = field(default=None, repr=False)
    _chain_id: int | None = None

    @property
    def market(self) -> MarketInfo:
        """The market, rediscovered every few minutes (new reserves, new price sources)."""
        if self._market is None or time.monotonic() - self._market_at > MARKET_REFRESH_SECS:
            self._market = discover_market(self.rpc, self.settings.pool_addresses_provider)
            self._market_at = time.monotonic()
        return self._market

    def refresh_market(self) -> MarketInfo:
        self._market = None
        return self.market

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.rpc.call("eth_chainId"), 16)
        return self._chain_id

    @property
    def sender(self) -> Sender:
        if self._sender is None:
            s = self.settings
            self._sender = Sender(self.rpc, s.private_key(), self.chain_id, self.state.r, self.state.key("sendlock"),
                                  s.max_priority_fee_wei, s.max_gas_price_wei)
        return self._sender

    def warm(self) -> None:
        _ = self.market, self.chain_id, self.sender
        self.state.r.ping()


@cache
def runtime() -> Runtime:
    s = get_settings()
    return Runtime(s, Rpc(s.rpc_url, timeout=s.rpc_timeout_secs), State(s.redis_url, s.redis_prefix),
                   session_factory(s.database_url))
