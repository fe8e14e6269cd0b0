"""What a process needs to act, built once per process (after fork) and reused by every task."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import cache

from sqlalchemy.orm import sessionmaker

from liqbot.chain.market import MarketInfo, discover_market
from liqbot.chain.rpc import Rpc
from liqbot.chain.sender import Sender
from liqbot.config import Settings, get_settings
from liqbot.domain.breaker import BreakerConfig, BreakerState
from liqbot.domain.fees import Fees
from liqbot.store.breaker import Breaker
from liqbot.store.db import BreakerEvent, session_factory
from liqbot.store.redis import State

MARKET_REFRESH_SECS = 300.0
log = logging.getLogger(__name__)


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
    _breaker: Breaker | None = field(default=None, repr=False)

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
            self._sender = Sender(self.rpc, self.settings.private_key(), self.chain_id, self.state.r, self.state.key())
        return self._sender

    @property
    def native_asset(self) -> str | None:
        """The reserve priced like the gas token (WETH on Ethereum), for gas costs in base units."""
        want = self.settings.native_price_asset
        for r in self.market.reserves:
            if want.lower() in (r.symbol.lower(), r.asset.lower()):
                return r.asset
        return None

    @property
    def breaker(self) -> Breaker:
        if self._breaker is None:
            s = self.settings
            cfg = BreakerConfig(s.breaker_max_attempts, s.breaker_window_secs, s.breaker_max_failures,
                                s.breaker_cooldown_secs)
            self._breaker = Breaker(self.state.r, self.state.key("breaker"), cfg, self._breaker_changed)
        return self._breaker

    def _breaker_changed(self, old: BreakerState, new: BreakerState) -> None:
        with self.sessions.begin() as session:
            session.add(BreakerEvent(at=time.time(), old_state=old.state, new_state=new.state, cause=new.cause[:200]))

    def warm(self) -> None:
        """Everything a first liquidation would otherwise pay for: the market, connections, and the
        approvals of the assets we hold (sent now, unless this is a dry run)."""
        _ = self.market, self.chain_id
        self.state.r.ping()
        s = self.settings
        tip = s.max_priority_fee_wei
        base_fee = int(self.rpc.call("eth_getBlockByNumber", "latest", False).get("baseFeePerGas") or "0x0", 16)
        fees = Fees(min(2 * base_fee + tip, s.max_gas_price_wei), tip)
        approved = self.sender.prepare_approvals([r.asset for r in self.market.reserves], self.market.pool, fees,
                                                 send=not s.dry_run)
        if approved:
            log.info("approved %d assets for the Pool at start-up", len(approved))


@cache
def runtime() -> Runtime:
    s = get_settings()
    return Runtime(s, Rpc(s.rpc_url, timeout=s.rpc_timeout_secs), State(s.redis_url, s.redis_prefix),
                   session_factory(s.database_url))
