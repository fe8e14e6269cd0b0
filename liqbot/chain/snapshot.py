"""Everything a liquidation decision needs, read fresh in two JSON-RPC round trips."""

from __future__ import annotations

from dataclasses import dataclass

from liqbot.chain import aave
from liqbot.chain.market import MarketInfo
from liqbot.chain.rpc import Rpc
from liqbot.domain.health import AccountData
from liqbot.domain.liquidation import ReservePosition
from liqbot.domain.users import reserves_in_use


def _call(to: str, data: str) -> tuple[str, list]:
    return ("eth_call", [{"to": to, "data": data}, "latest"])


@dataclass(frozen=True)
class Snapshot:
    account: AccountData
    positions: list[ReservePosition]
    inventory: dict[str, int]  # the liquidator's balance of each debt asset the user owes
    native_price: int  # base units per whole gas token; 0 when the market has no such reserve
    base_fee: int
    block: int
    liquidator_nonce: int | None = None  # the liquidator's pending nonce, when asked for


def read_snapshot(rpc: Rpc, market: MarketInfo, user: str, liquidator: str | None = None,
                  native_asset: str | None = None) -> Snapshot:
    """The user's account and per-reserve positions priced by the oracle; with a liquidator, also its
    inventory of the user's debt assets (the liquidation path); with a native asset, the gas token's price."""
    first = [
        _call(market.pool, aave.GET_USER_ACCOUNT_DATA.calldata(user)),
        _call(market.pool, aave.GET_USER_CONFIGURATION.calldata(user)),
        ("eth_getBlockByNumber", ["latest", False]),
    ]
    if liquidator:
        first.append(("eth_getTransactionCount", [liquidator, "pending"]))
    acc_raw, cfg_raw, head, *nonce_raw = rpc.batch(first)
    nonce = int(nonce_raw[0], 16) if nonce_raw else None
    acc = AccountData(user, *aave.GET_USER_ACCOUNT_DATA.decode(acc_raw))
    n = max(market.by_id, default=-1) + 1
    used = [(market.by_id[rid], borrowing, coll)
            for rid, borrowing, coll in reserves_in_use(aave.GET_USER_CONFIGURATION.decode(cfg_raw), n) if rid in market.by_id]
    base_fee, block = int(head.get("baseFeePerGas") or "0x0", 16), int(head["number"], 16)
    if not used:
        return Snapshot(acc, [], {}, 0, base_fee, block, nonce)
    priced = [r.asset for r, _, _ in used] + ([native_asset] if native_asset else [])
    debts = [r for r, borrowing, _ in used if borrowing] if liquidator else []
    calls = [_call(market.oracle, aave.GET_ASSETS_PRICES.calldata(priced))]
    calls += [_call(market.data_provider, aave.GET_USER_RESERVE_DATA.calldata(r.asset, user)) for r, _, _ in used]
    calls += [_call(r.asset, aave.BALANCE_OF.calldata(liquidator)) for r in debts if liquidator]
    prices_raw, *rest = rpc.batch(calls)
    prices = aave.GET_ASSETS_PRICES.decode(prices_raw)
    reserve_raws, balance_raws = rest[: len(used)], rest[len(used) :]
    positions = []
    for (r, _, coll), price, raw in zip(used, prices, reserve_raws, strict=False):
        d = aave.GET_USER_RESERVE_DATA.decode(raw)
        positions.append(ReservePosition(
            asset=r.asset, decimals=r.decimals, price=price, collateral=d[0], debt=d[1] + d[2],
            collateral_enabled=coll and d[8], liquidation_threshold=r.liquidation_threshold,
            liquidation_bonus=r.liquidation_bonus, protocol_fee=r.protocol_fee, active=r.active, paused=r.paused,
        ))
    inventory = {r.asset: aave.BALANCE_OF.decode(raw) for r, raw in zip(debts, balance_raws, strict=True)}
    return Snapshot(acc, positions, inventory, prices[-1] if native_asset else 0, base_fee, block, nonce)
