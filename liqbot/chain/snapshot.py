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


Used = list[tuple[ReserveInfo, bool, bool]]  # (reserve, borrowing, collateral) for each reserve in use


def read_snapshots(rpc: Rpc, market: MarketInfo, users: list[tuple[str, int | None]], liquidator: str | None = None,
                   native_asset: str | None = None) -> list[Snapshot]:
    """Each user's account and per-reserve positions priced by the oracle; with a liquidator, also its
    inventory of the user's debt assets (the liquidation path); with a native asset, the gas token's price.

    Which reserves to read depends on a user's configuration, which would take a second round trip;
    with an expected configuration (the bitmap seen last time) the reserves are read alongside it,
    and a second trip is made only for users who now use a reserve the guess did not include. Every
    user shares the one batch, and prices and our balances are read once for all of them: a burst of
    liquidations costs one round trip, not one per user."""
    head: list[tuple[str, list]] = [("eth_getBlockByNumber", ["latest", False])]
    if liquidator:
        head.append(("eth_getTransactionCount", [liquidator, "pending"]))
    guesses = [_in_use(market, expected) if expected else [] for _, expected in users]
    shared = _Shared(market, [r for g in guesses for r, _, _ in g], liquidator, native_asset)
    calls, spans = head + shared.calls, []
    for (user, _), guess in zip(users, guesses, strict=True):
        start = len(calls)
        calls += [_call(market.pool, aave.GET_USER_ACCOUNT_DATA.calldata(user)),
                  _call(market.pool, aave.GET_USER_CONFIGURATION.calldata(user)), *_reserve_calls(market, user, guess)]
        spans.append((start, len(calls)))
    # A guessed reserve the user does not use may revert (its debt token's math on an empty position):
    # per-call errors are kept in place and raised only if the reserve turns out to be in use.
    replies = rpc.batch(calls, raise_errors=False)
    block_raw = _ok(replies[0])
    nonce = int(_ok(replies[1]), 16) if liquidator else None
    common = {"base_fee": int(block_raw.get("baseFeePerGas") or "0x0", 16), "block": int(block_raw["number"], 16),
              "liquidator_nonce": nonce}
    shared.decode(replies[len(head) : len(head) + len(shared.calls)])
    out: list[Snapshot | None] = []
    again: dict[int, tuple[AccountData, int, Used]] = {}
    for i, ((user, _), (start, end)) in enumerate(zip(users, spans, strict=True)):
        acc = AccountData(user, *aave.GET_USER_ACCOUNT_DATA.decode(_ok(replies[start])))
        config = aave.GET_USER_CONFIGURATION.decode(_ok(replies[start + 1]))
        used = _in_use(market, config)
        if {r.id for r, _, _ in used} <= {r.id for r, _, _ in guesses[i]}:
            datas = dict(zip((r.id for r, _, _ in guesses[i]), replies[start + 2 : end], strict=True))
            out.append(shared.snapshot(acc, used, datas, config, trips=1, **common))
        else:
            out.append(None)
            again[i] = (acc, config, used)
    if again:
        more = _Shared(market, [r for _, _, used in again.values() for r, _, _ in used], liquidator, native_asset)
        calls2, spans2 = list(more.calls), []
        for i, (_, _, used) in again.items():
            start = len(calls2)
            calls2 += _reserve_calls(market, users[i][0], used)
            spans2.append((start, len(calls2)))
        replies2 = rpc.batch(calls2, raise_errors=False)
        more.decode(replies2[: len(more.calls)])
        for (i, (acc, config, used)), (start, end) in zip(again.items(), spans2, strict=True):
            datas = dict(zip((r.id for r, _, _ in used), replies2[start:end], strict=True))
            out[i] = more.snapshot(acc, used, datas, config, trips=2, **common)
    return [snap for snap in out if snap is not None]


def _in_use(market: MarketInfo, config: int) -> Used:
    n = max(market.by_id, default=-1) + 1
    return [(market.by_id[rid], borrowing, coll) for rid, borrowing, coll in reserves_in_use(config, n) if rid in market.by_id]


def _reserve_calls(market: MarketInfo, user: str, reserves: Used) -> list[tuple[str, list]]:
    return [_call(market.data_provider, aave.GET_USER_RESERVE_DATA.calldata(r.asset, user)) for r, _, _ in reserves]


class _Shared:
    """What every user of a batch needs of the same reserves: their prices and our balance of each."""

    def __init__(self, market: MarketInfo, reserves: list[ReserveInfo], liquidator: str | None, native_asset: str | None):
        self.market, self.liquidator, self.native = market, liquidator, native_asset
        self.assets = list(dict.fromkeys(r.asset for r in reserves))
        self.priced = self.assets + ([native_asset] if native_asset else [])
        self.prices: dict[str, int] = {}
        self.balances: dict[str, object] = {}
        self.calls: list[tuple[str, list]] = []
        if self.assets:
            self.calls = [_call(market.oracle, aave.GET_ASSETS_PRICES.calldata(self.priced))]
            if liquidator:
                self.calls += [_call(a, aave.BALANCE_OF.calldata(liquidator)) for a in self.assets]

    def decode(self, replies: list) -> None:
        if not self.assets:
            return
        self.prices = dict(zip(self.priced, aave.GET_ASSETS_PRICES.decode(_ok(replies[0])), strict=True))
        if self.liquidator:
            self.balances = dict(zip(self.assets, replies[1:], strict=True))

    def snapshot(self, acc: AccountData, used: Used, datas: dict[int, object], config: int, trips: int, **common) -> Snapshot:
        positions, inventory = [], {}
        for r, borrowing, coll in used:
            d = aave.GET_USER_RESERVE_DATA.decode(_ok(datas[r.id]))
            positions.append(ReservePosition(
                asset=r.asset, decimals=r.decimals, price=self.prices[r.asset], collateral=d[0], debt=d[1] + d[2],
                collateral_enabled=coll and d[8], liquidation_threshold=r.liquidation_threshold,
                liquidation_bonus=r.liquidation_bonus, protocol_fee=r.protocol_fee, active=r.active, paused=r.paused,
            ))
            if self.liquidator and borrowing:
                inventory[r.asset] = aave.BALANCE_OF.decode(_ok(self.balances[r.asset]))
        native_price = self.prices.get(self.native, 0) if self.native and used else 0
        return Snapshot(acc, positions, inventory, native_price, config=config, round_trips=trips, **common)


def _ok(reply: object) -> object:
    if isinstance(reply, RpcError):
        raise reply
    return reply
