"""What a process needs to act, built once per process (after fork) and reused by every task."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

from eth_account import Account
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from liqbot.chain import aave, guards
from liqbot.chain.inventory import Inventory
from liqbot.chain.liquidator import check_liquidator
from liqbot.chain.market import MarketInfo, discover_market
from liqbot.chain.rpc import Rpc
from liqbot.chain.sender import Sender
from liqbot.chain.submit import Submitter, build_submitter
from liqbot.config import EXPECTED, Settings, get_settings, get_settings_or_exit
from liqbot.domain.breaker import BreakerConfig, BreakerState
from liqbot.domain.fees import Fees
from liqbot.errors import ConfigError, RpcError
from liqbot.store.attempts import awaiting_receipt
from liqbot.store.breaker import Breaker
from liqbot.store.db import BreakerEvent, session_factory
from liqbot.store.redis import State

MARKET_REFRESH_SECS = 300.0
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The node and the database are opened on first use: a command that reads only Redis (`breaker status`)
    needs neither RPC_URL nor a reachable DATABASE_URL."""

    settings: Settings
    state: State
    _rpc: Rpc | None = field(default=None, repr=False)
    _sessions: sessionmaker | None = field(default=None, repr=False)
    _market: MarketInfo | None = field(default=None, repr=False)
    _market_at: float = 0.0
    _rediscovering: bool = False
    _sender: Sender | None = field(default=None, repr=False)
    _submitter: Submitter | None = field(default=None, repr=False)
    _chain_id: int | None = None
    _breaker: Breaker | None = field(default=None, repr=False)
    _liquidator_contract: str | None = None
    _liquidator_checked: bool = False
    dex: dict = field(default_factory=dict, repr=False)  # the DEX routes our contract sells through, found once
    _inventory: Inventory | None = field(default=None, repr=False)
    _recent: dict = field(default_factory=dict, repr=False)
    trust_blockers: list[str] | None = None  # read with the inventory (chain/guards.py); None: not read yet
    _helper: ThreadPoolExecutor | None = field(default=None, repr=False)

    @property
    def rpc(self) -> Rpc:
        """The node at RPC_URL (a ConfigError naming it when it is unset)."""
        if self._rpc is None:
            s = self.settings.require("rpc_url")
            assert s.rpc_url is not None
            self._rpc = Rpc(s.rpc_url, timeout=s.rpc_timeout_secs)
        return self._rpc

    @property
    def sessions(self) -> sessionmaker:
        """The database at DATABASE_URL, its schema created on first use; a URL that cannot be opened is a
        ConfigError naming it (one line, not a driver's traceback)."""
        if self._sessions is None:
            try:
                self._sessions = session_factory(self.settings.database_url)
            except (SQLAlchemyError, ImportError) as exc:  # a malformed URL, a missing driver, no server
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                malformed = isinstance(exc, ArgumentError | ImportError)
                raise ConfigError(f"DATABASE_URL: cannot open {self.settings.redacted()['database_url']}: {reason}"
                                  + (f"; expected {EXPECTED['database_url']}" if malformed else "")) from None
        return self._sessions

    @property
    def market(self) -> MarketInfo:
        """The market, rediscovered every few minutes (new reserves, new price sources): in the background
        once known, so that no liquidation waits for the dozens of reads a discovery takes."""
        if self._market is None:
            self._market, self._market_at = self._discover(), time.monotonic()
        elif time.monotonic() - self._market_at > MARKET_REFRESH_SECS and not self._rediscovering:
            self._rediscovering = True
            threading.Thread(target=self._rediscover, name="market", daemon=True).start()
        return self._market

    def _discover(self, rpc: Rpc | None = None) -> MarketInfo:
        provider = self.settings.require("pool_addresses_provider").pool_addresses_provider
        assert provider is not None
        return discover_market(rpc or self.rpc, provider)

    def _rediscover(self) -> None:
        rpc = Rpc(self.rpc.url, timeout=self.settings.rpc_timeout_secs)  # a connection of the thread's own
        try:
            self._market, self._market_at = self._discover(rpc), time.monotonic()
        except Exception as exc:  # the known market serves on; tried again a period later
            log.warning("rediscovering the market failed: %s", exc)
            self._market_at = time.monotonic()
        finally:
            self._rediscovering = False
            rpc.close()

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
    def submitter(self) -> Submitter:
        """The route SUBMIT_ROUTE names, for `sender.send_many(..., submitter=rt.submitter)`: built once per
        process (the bundle route keeps a connection and a thread per relay)."""
        if self._submitter is None:
            s = self.settings
            key = s.relay_signing_key.get_secret_value() if s.relay_signing_key is not None else None
            self._submitter = build_submitter(self.rpc, s.submit_route, s.relay_urls, key, s.bundle_blocks)
        return self._submitter

    @property
    def native_asset(self) -> str | None:
        """The reserve priced like the gas token (WETH on Ethereum), for gas costs in base units."""
        want = self.settings.native_price_asset
        for r in self.market.reserves:
            if want.lower() in (r.symbol.lower(), r.asset.lower()):
                return r.asset
        return None

    @property
    def liquidator_contract(self) -> str | None:
        """LIQUIDATOR_CONTRACT, checked against the chain once per process (see `checked_liquidator`);
        None: liquidations are paid from inventory. Raises ConfigError if the contract is not usable."""
        if not self._liquidator_checked:
            self._liquidator_contract = checked_liquidator(self.rpc, self.settings)
            self._liquidator_checked = True
        return self._liquidator_contract

    def check_chain(self) -> None:
        """Start-up checks against the chain, before any work is taken: a ConfigError stops the process."""
        _check_at_startup(lambda: self.liquidator_contract)

    def recent(self, name: object, ttl: float, read: Callable[[], T]) -> T:
        """`read()`, remembered for `ttl` seconds: what other processes change rarely (the gas receipts taught,
        a suspended trust) without a Redis round trip on every attempt of the lane."""
        now = time.monotonic()
        hit = self._recent.get(name)
        if hit is None or now - hit[0] > ttl:
            hit = self._recent[name] = (now, read())
        return hit[1]

    def background(self, fn: Callable[[], T]) -> Future[T]:
        """`fn()` on this process's helper thread: a read that overlaps a round trip the caller makes meanwhile."""
        if self._helper is None:
            self._helper = ThreadPoolExecutor(1, thread_name_prefix="helper")
        return self._helper.submit(fn)

    def remember(self, name: object, value: object) -> None:
        """What `recent(name, ...)` returns for its ttl from now: a value read in a round trip made anyway."""
        self._recent[name] = (time.monotonic(), value)

    def forget(self, name: object) -> None:
        self._recent.pop(name, None)

    @property
    def inventory(self) -> Inventory:
        """Our balances of every reserve, as the lane knows them without a read (chain/inventory.py)."""
        if self._inventory is None:
            self._inventory = Inventory(self._lane_view)
        return self._inventory

    def _lane_view(self) -> dict[str, int]:
        """Our balances for the inventory and, read with them, what makes the trusted path unsafe here."""
        m = self.market
        assets = [r.asset for r in m.reserves]
        held, blockers = guards.lane_view(self.rpc, m.provider, m.pool, self.sender.address, assets)
        if blockers != self.trust_blockers and blockers:
            log.info("plans are verified by simulation while %s", "; ".join(blockers))
        self.trust_blockers = blockers
        return held

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
        """Everything a first liquidation would otherwise pay for: the market, connections, the approvals
        of the assets we hold (sent now, unless this is a dry run) and the LIQUIDATOR_CONTRACT check."""
        _ = self.market, self.chain_id, self.sessions
        self.state.r.ping()
        with self.sessions() as session:  # the lane's one query per attempt, compiled now (~10 ms the first time)
            awaiting_receipt(session, [self.sender.address], time.time())
        s = self.settings
        tip = s.max_priority_fee_wei
        base_fee = int(self.rpc.call("eth_getBlockByNumber", "latest", False).get("baseFeePerGas") or "0x0", 16)
        fees = Fees(min(2 * base_fee + tip, s.max_gas_price_wei), tip)
        approved = self.sender.prepare_approvals([r.asset for r in self.market.reserves], self.market.pool, fees,
                                                 send=not s.dry_run)
        if approved:
            log.info("approved %d assets for the Pool at start-up", len(approved))
        _ = self.liquidator_contract  # checked now (a read or two), not at the first liquidation
        self.inventory.refresh()  # a worker process then follows it (liqbot.celery._warm)


def checked_liquidator(rpc: Rpc, settings: Settings) -> str | None:
    """LIQUIDATOR_CONTRACT if it is our FlashLiquidator, on this market's Pool, owned by the liquidator key
    (anything else would only revert, liquidation after liquidation); None when it is unset."""
    address = settings.liquidator_contract
    if address is None:
        return None
    pool = aave.GET_POOL.decode(rpc.eth_call(settings.pool_addresses_provider, aave.GET_POOL.calldata()))
    check_liquidator(rpc, address, pool, Account.from_key(settings.private_key()).address)
    return address


def _check_at_startup(check: Callable[[], str | None]) -> None:
    """A ConfigError propagates; an unreachable node only warns (each process checks again before its first
    liquidation), since the node may come up after the bot."""
    try:
        liquidator = check()
    except RpcError as exc:
        log.warning("LIQUIDATOR_CONTRACT not checked at start-up (%s); checked again before the first liquidation", exc)
        return
    if liquidator is None:
        log.info("no LIQUIDATOR_CONTRACT: liquidations are paid from inventory only")
    else:
        log.info("flash liquidations through %s (LIQUIDATOR_CONTRACT checked)", liquidator)


def check_chain_or_exit() -> None:
    """A celery worker's start-up check, in its main process before the pool forks (hence a connection of
    its own, closed here): a wrong LIQUIDATOR_CONTRACT stops the worker with one line and exit code 2, as a
    bad setting does. An unreachable node does not: each process checks again before its first liquidation."""
    import sys

    s = get_settings_or_exit("rpc_url")
    assert s.rpc_url is not None
    rpc = Rpc(s.rpc_url, timeout=s.rpc_timeout_secs)
    try:
        _check_at_startup(lambda: checked_liquidator(rpc, s))
    except ConfigError as exc:
        print(f"liqbot: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        rpc.close()


@cache
def runtime() -> Runtime:
    s = get_settings()
    return Runtime(s, State(s.redis_url, s.redis_prefix))
