"""Discover an Aave v3 market from its PoolAddressesProvider alone."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from liqbot.chain import aave
from liqbot.chain.abi import Function
from liqbot.chain.rpc import Rpc, RpcUnavailable
from liqbot.errors import LiqbotError, RpcError

log = logging.getLogger(__name__)

AGGREGATOR = Function("aggregator()", "address")  # Chainlink's EACAggregatorProxy


@dataclass(frozen=True)
class ReserveInfo:
    asset: str
    symbol: str
    decimals: int
    id: int
    a_token: str
    stable_debt_token: str
    variable_debt_token: str
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    protocol_fee: int
    active: bool
    frozen: bool
    paused: bool
    source: str  # what AaveOracle reads
    feeds: tuple[str, ...]  # contracts whose AnswerUpdated moves this price (the source and what it proxies)


@dataclass(frozen=True)
class MarketInfo:
    provider: str
    pool: str
    oracle: str
    data_provider: str
    revision: int | None
    base_currency_unit: int
    reserves: tuple[ReserveInfo, ...]
    by_asset: dict[str, ReserveInfo] = field(init=False, repr=False)
    by_id: dict[int, ReserveInfo] = field(init=False, repr=False)
    by_feed: dict[str, tuple[str, ...]] = field(init=False, repr=False)
    by_a_token: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_asset", {r.asset: r for r in self.reserves})
        object.__setattr__(self, "by_id", {r.id: r for r in self.reserves})
        feeds: dict[str, list[str]] = {}
        for r in self.reserves:
            for f in r.feeds:
                feeds.setdefault(f, []).append(r.asset)
        object.__setattr__(self, "by_feed", {f: tuple(a) for f, a in feeds.items()})
        object.__setattr__(self, "by_a_token", {r.a_token: r.asset for r in self.reserves})

    @property
    def watched_addresses(self) -> list[str]:
        """Every contract whose logs can move a health factor."""
        return [self.pool, self.oracle, *self.by_a_token, *self.by_feed]


def _call(to: str, fn: Function, *args: object) -> tuple[str, list]:
    return ("eth_call", [{"to": to, "data": fn.calldata(*args)}, "latest"])


def discover_market(rpc: Rpc, provider: str) -> MarketInfo:
    try:
        pool_raw, oracle_raw, dp_raw = rpc.batch(
            [_call(provider, aave.GET_POOL), _call(provider, aave.GET_PRICE_ORACLE), _call(provider, aave.GET_POOL_DATA_PROVIDER)]
        )
        pool, oracle, dp = (aave.GET_POOL.decode(pool_raw), aave.GET_PRICE_ORACLE.decode(oracle_raw),
                            aave.GET_POOL_DATA_PROVIDER.decode(dp_raw))
        assets = aave.GET_RESERVES_LIST.decode(rpc.eth_call(pool, aave.GET_RESERVES_LIST.calldata()))
    except RpcUnavailable:
        raise
    except (RpcError, ValueError, OverflowError) as exc:
        raise LiqbotError(f"{provider} does not look like an Aave v3 PoolAddressesProvider: {exc}") from exc
    if int(pool, 16) == 0:
        raise LiqbotError(f"PoolAddressesProvider {provider} has no Pool set")

    per = 6
    calls = [_call(pool, aave.POOL_REVISION), _call(oracle, aave.BASE_CURRENCY_UNIT)]
    for a in assets:
        calls += [_call(pool, aave.GET_RESERVE_DATA, a), _call(dp, aave.GET_RESERVE_CONFIGURATION_DATA, a),
                  _call(dp, aave.GET_PAUSED, a), _call(dp, aave.GET_LIQUIDATION_PROTOCOL_FEE, a),
                  _call(oracle, aave.GET_SOURCE_OF_ASSET, a), _call(a, aave.SYMBOL)]
    res = rpc.batch(calls, raise_errors=False)
    revision = None if isinstance(res[0], RpcError) else aave.POOL_REVISION.decode(res[0])
    base_unit = 10**8 if isinstance(res[1], RpcError) else aave.BASE_CURRENCY_UNIT.decode(res[1])

    partial = []
    for i, a in enumerate(assets):
        rdata, cfg, paused, fee, source, symbol = res[2 + i * per : 2 + (i + 1) * per]
        for r in (rdata, cfg, source):
            if isinstance(r, RpcError):
                raise LiqbotError(f"cannot read reserve {a}: {r}")
        rd = aave.GET_RESERVE_DATA.decode(rdata)
        c = aave.GET_RESERVE_CONFIGURATION_DATA.decode(cfg)
        partial.append({
            "asset": a, "symbol": _symbol(symbol, a), "decimals": c[0], "id": rd[7], "a_token": rd[8], "stable_debt_token": rd[9],
            "variable_debt_token": rd[10], "ltv": c[1], "liquidation_threshold": c[2], "liquidation_bonus": c[3],
            "protocol_fee": 0 if isinstance(fee, RpcError) else aave.GET_LIQUIDATION_PROTOCOL_FEE.decode(fee),
            "active": c[8], "frozen": c[9], "paused": False if isinstance(paused, RpcError) else aave.GET_PAUSED.decode(paused),
            "source": aave.GET_SOURCE_OF_ASSET.decode(source),
        })
    proxied = rpc.batch([_call(p["source"], AGGREGATOR) for p in partial], raise_errors=False)
    reserves = []
    for p, agg in zip(partial, proxied, strict=True):
        feeds = [p["source"]]
        if not isinstance(agg, RpcError):
            with contextlib.suppress(ValueError, OverflowError):  # not a proxy: the source is the aggregator
                feeds.append(AGGREGATOR.decode(agg))
        reserves.append(ReserveInfo(**p, feeds=tuple(dict.fromkeys(feeds))))
    market = MarketInfo(provider, pool, oracle, dp, revision, base_unit, tuple(reserves))
    log.info("market %s: pool %s, revision %s, %d reserves (%s)", provider, pool, revision, len(reserves),
             ", ".join(r.symbol for r in reserves))
    return market


def _symbol(raw: object, asset: str) -> str:
    if isinstance(raw, str):
        try:
            return aave.SYMBOL.decode(raw)
        except (ValueError, OverflowError, UnicodeDecodeError):
            try:  # some tokens (MKR) return bytes32
                return bytes.fromhex(raw[2:66]).rstrip(b"\0").decode()
            except (ValueError, UnicodeDecodeError):
                pass
    return asset[:10]
