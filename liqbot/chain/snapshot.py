"""Everything a liquidation decision needs, read fresh in one JSON-RPC round trip (two without a guess)."""

from __future__ import annotations

from dataclasses import dataclass

from liqbot.chain import aave
from liqbot.chain.market import MarketInfo, ReserveInfo
from liqbot.chain.rpc import Rpc
from liqbot.domain.health import AccountData
from liqbot.domain.liquidation import ReservePosition
from liqbot.domain.users import reserves_in_use
from liqbot.errors import RpcError


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
    config: int = 0  # the user's getUserConfiguration bitmap: the next read's guess
    round_trips: int = 0


def read_snapshot(rpc: Rpc, market: MarketInfo, user: str, liquidator: str | None = None,
                  native_asset: str | None = None, expected_config: int | None = None) -> Snapshot:
    """One user's snapshot: see `read_snapshots`."""
    return read_snapshots(rpc, market, [(user, expected_config)], liquidator, native_asset)[0]


def read_snapshots(rpc: Rpc, market: MarketInfo, users: list[tuple[str, int | None]], liquidator: str | None = None,
                   native_asset: str | None = None) -> list[Snapshot]:
    """Each user's account and per-reserve positions priced by the oracle; with a liquidator, also its
    inventory of the user's debt assets (the liquidation path); with a native asset, the gas token's price.

    Which reserves to read depends on a user's configuration, which would take a second round trip;
    with an expected configuration (the bitmap seen last time) the reserves are read alongside it,
    and a second trip is made only for users who now use a reserve the guess did not include. Every
    user shares the one batch: a burst of liquidations costs one round trip, not one per user."""
    head_calls: list[tuple[str, list]] = [("eth_getBlockByNumber", ["latest", False])]
    if liquidator:
        head_calls.append(("eth_getTransactionCount", [liquidator, "pending"]))
    calls, spans, guesses = list(head_calls), [], []
    for user, expected in users:
        guess = _in_use(market, expected) if expected else []
        start = len(calls)
        calls += [_call(market.pool, aave.GET_USER_ACCOUNT_DATA.calldata(user)),
                  _call(market.pool, aave.GET_USER_CONFIGURATION.calldata(user)),
                  *_detail_calls(market, user, guess, liquidator, native_asset)]
        spans.append((start, len(calls)))
        guesses.append(guess)
    # A guessed reserve the user does not use may revert (its debt token's math on an empty position):
    # per-call errors are kept in place and raised only if the reserve turns out to be in use.
    replies = rpc.batch(calls, raise_errors=False)
    head = _ok(replies[0])
    nonce = int(_ok(replies[1]), 16) if liquidator else None
    base_fee, block = int(head.get("baseFeePerGas") or "0x0", 16), int(head["number"], 16)
    out: list[Snapshot | None] = []
    again: dict[int, tuple[AccountData, int]] = {}
    for i, ((user, _), (start, end)) in enumerate(zip(users, spans, strict=True)):
        acc = AccountData(user, *aave.GET_USER_ACCOUNT_DATA.decode(_ok(replies[start])))
        config = aave.GET_USER_CONFIGURATION.decode(_ok(replies[start + 1]))
        used = _in_use(market, config)
        if not used:
            out.append(Snapshot(acc, [], {}, 0, base_fee, block, nonce, config, 1))
        elif {r.id for r, _, _ in used} <= {r.id for r, _, _ in guesses[i]}:
            out.append(_decode_detail(acc, used, guesses[i], replies[start + 2 : end], liquidator, native_asset,
                                      base_fee, block, nonce, config, 1))
        else:
            out.append(None)
            again[i] = (acc, config)
            guesses[i] = used
    if again:
        second, spans2 = [], []
        for i in again:
            start = len(second)
            second += _detail_calls(market, users[i][0], guesses[i], liquidator, native_asset)
            spans2.append((start, len(second)))
        replies2 = rpc.batch(second, raise_errors=False)
        for (i, (acc, config)), (start, end) in zip(again.items(), spans2, strict=True):
            out[i] = _decode_detail(acc, guesses[i], guesses[i], replies2[start:end], liquidator, native_asset,
                                    base_fee, block, nonce, config, 2)
    return [snap for snap in out if snap is not None]


def _in_use(market: MarketInfo, config: int) -> list[tuple[ReserveInfo, bool, bool]]:
    n = max(market.by_id, default=-1) + 1
    return [(market.by_id[rid], borrowing, coll) for rid, borrowing, coll in reserves_in_use(config, n) if rid in market.by_id]


def _detail_calls(market: MarketInfo, user: str, reserves: list[tuple[ReserveInfo, bool, bool]], liquidator: str | None,
                  native_asset: str | None) -> list[tuple[str, list]]:
    """Prices, the user's per-reserve data and (for a liquidator) its balance of every one of them."""
    if not reserves:
        return []
    priced = [r.asset for r, _, _ in reserves] + ([native_asset] if native_asset else [])
    calls = [_call(market.oracle, aave.GET_ASSETS_PRICES.calldata(priced))]
    calls += [_call(market.data_provider, aave.GET_USER_RESERVE_DATA.calldata(r.asset, user)) for r, _, _ in reserves]
    calls += [_call(r.asset, aave.BALANCE_OF.calldata(liquidator)) for r, _, _ in reserves] if liquidator else []
    return calls


def _decode_detail(acc: AccountData, used: list[tuple[ReserveInfo, bool, bool]], read: list[tuple[ReserveInfo, bool, bool]],
                   replies: list, liquidator: str | None, native_asset: str | None, base_fee: int, block: int,
                   nonce: int | None, config: int, trips: int) -> Snapshot:
    """Positions of the reserves in `used`, from replies to `_detail_calls` over `read` (a superset)."""
    prices_raw, rest = _ok(replies[0]), replies[1:]
    prices = aave.GET_ASSETS_PRICES.decode(prices_raw)
    at = {r.id: i for i, (r, _, _) in enumerate(read)}
    positions, inventory = [], {}
    for r, borrowing, coll in used:
        i = at[r.id]
        d = aave.GET_USER_RESERVE_DATA.decode(_ok(rest[i]))
        positions.append(ReservePosition(
            asset=r.asset, decimals=r.decimals, price=prices[i], collateral=d[0], debt=d[1] + d[2],
            collateral_enabled=coll and d[8], liquidation_threshold=r.liquidation_threshold,
            liquidation_bonus=r.liquidation_bonus, protocol_fee=r.protocol_fee, active=r.active, paused=r.paused,
        ))
        if liquidator and borrowing:
            inventory[r.asset] = aave.BALANCE_OF.decode(_ok(rest[len(read) + i]))
    return Snapshot(acc, positions, inventory, prices[-1] if native_asset else 0, base_fee, block, nonce, config, trips)


def _ok(reply: object) -> object:
    if isinstance(reply, RpcError):
        raise reply
    return reply
