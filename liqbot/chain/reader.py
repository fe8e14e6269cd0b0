"""Batched reads of user health and positions: one HTTP round trip for many users."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from liqbot.chain import aave
from liqbot.chain.market import MarketInfo
from liqbot.chain.rpc import Rpc
from liqbot.domain.health import AccountData
from liqbot.domain.liquidation import ReservePosition
from liqbot.domain.users import reserves_in_use
from liqbot.errors import RpcError


def _call(to: str, data: str, block: str = "latest") -> tuple[str, list]:
    return ("eth_call", [{"to": to, "data": data}, block])


def account_data(rpc: Rpc, pool: str, users: Sequence[str], batch_size: int = 500,
                 block: str = "latest") -> dict[str, AccountData]:
    """`getUserAccountData` for every user, `batch_size` calls per HTTP request. A user whose call
    fails (a malformed address, a node error) is left out rather than failing the batch."""
    out: dict[str, AccountData] = {}
    for start in range(0, len(users), batch_size):
        chunk = users[start : start + batch_size]
        results = rpc.batch([_call(pool, aave.GET_USER_ACCOUNT_DATA.calldata(u), block) for u in chunk], raise_errors=False)
        for user, raw in zip(chunk, results, strict=True):
            if isinstance(raw, RpcError):
                continue
            out[user] = AccountData(user, *aave.GET_USER_ACCOUNT_DATA.decode(raw))
    return out


def liquidatable(accounts: Iterable[AccountData]) -> list[AccountData]:
    return [a for a in accounts if a.liquidatable]


def user_positions(rpc: Rpc, market: MarketInfo, user: str) -> tuple[AccountData, list[ReservePosition]]:
    """A user's account data and per-reserve positions, priced by the oracle, in two round trips."""
    acc_raw, cfg_raw = rpc.batch([
        _call(market.pool, aave.GET_USER_ACCOUNT_DATA.calldata(user)),
        _call(market.pool, aave.GET_USER_CONFIGURATION.calldata(user)),
    ])
    acc = AccountData(user, *aave.GET_USER_ACCOUNT_DATA.decode(acc_raw))
    used = [(market.by_id[rid], coll) for rid, _, coll in
            reserves_in_use(aave.GET_USER_CONFIGURATION.decode(cfg_raw), max(market.by_id, default=-1) + 1)
            if rid in market.by_id]
    if not used:
        return acc, []
    calls = [_call(market.oracle, aave.GET_ASSETS_PRICES.calldata([r.asset for r, _ in used]))]
    calls += [_call(market.data_provider, aave.GET_USER_RESERVE_DATA.calldata(r.asset, user)) for r, _ in used]
    prices_raw, *reserve_raws = rpc.batch(calls)
    prices = aave.GET_ASSETS_PRICES.decode(prices_raw)
    positions = []
    for (r, coll), price, raw in zip(used, prices, reserve_raws, strict=True):
        d = aave.GET_USER_RESERVE_DATA.decode(raw)
        positions.append(ReservePosition(
            asset=r.asset, decimals=r.decimals, price=price, collateral=d[0], debt=d[1] + d[2],
            collateral_enabled=coll and d[8], liquidation_threshold=r.liquidation_threshold,
            liquidation_bonus=r.liquidation_bonus, active=r.active, paused=r.paused,
        ))
    return acc, positions
