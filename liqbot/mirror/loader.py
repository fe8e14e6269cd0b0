"""Read a mirror from the chain: JSON-RPC batches, every call pinned to one block number.

`load_mirror` takes four rounds whatever the number of users (each split into batches of `chunk`
calls): the Pool's revision and reserve list; the oracle, every reserve's data and each user's
configuration and e-mode; prices, the e-mode categories in use and each used reserve's scaled balances
(and v3.0 stable debts); then, only where they exist, e-mode price sources. The same readers serve
the live mirror's re-reads of a block (users, reserves, categories, prices, price sources), which share
one round trip. Pinning matters: a mirror mixing two blocks would disagree with the Pool at both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from eth_utils import to_checksum_address

from liqbot.chain import aave
from liqbot.chain.abi import Function
from liqbot.chain.rpc import Rpc
from liqbot.domain.account import (
    AccountRules,
    EModeCategory,
    MarketState,
    ReserveState,
    StableDebt,
    UnsupportedRevision,
    UserState,
    rules_for_revision,
)
from liqbot.domain.units import ZERO_ADDRESS
from liqbot.errors import LiqbotError, RpcError
from liqbot.mirror.feeds import PriceSource, classify
from liqbot.mirror.state import Mirror, ReserveTokens

log = logging.getLogger(__name__)

Call = tuple[str, Function, tuple[Any, ...]]


class _Failed(LiqbotError):
    """An optional call that reverted or returned nothing decodable (e.g. `aggregator()` on a plain feed)."""


class _Pinned:
    """eth_calls at one block, batched in chunks, decoded; an error names the call that failed."""

    def __init__(self, rpc: Rpc, block: int, chunk: int):
        self.rpc, self.tag, self.chunk = rpc, hex(block), chunk
        self.round_trips = 0

    def read(self, calls: Sequence[Call], *, tolerate: bool = False) -> list[Any]:
        out: list[Any] = []
        if calls:
            self.round_trips += 1
        for start in range(0, len(calls), self.chunk):
            part = calls[start : start + self.chunk]
            replies = self.rpc.batch(
                [("eth_call", [{"to": to, "data": fn.calldata(*args)}, self.tag]) for to, fn, args in part], raise_errors=False)
            for (to, fn, args), raw in zip(part, replies, strict=True):
                try:
                    if isinstance(raw, RpcError):
                        raise raw
                    out.append(fn.decode(raw))
                except (RpcError, ValueError, OverflowError, TypeError) as exc:
                    if not tolerate:
                        raise LiqbotError(f"{fn.name}{args} on {to} at block {int(self.tag, 16)}: {exc}") from exc
                    out.append(_Failed(f"{fn.name} on {to}: {exc}"))
        return out


class Batch:
    """Calls from several readers in one pinned round trip, each reply handed to its reader's sink."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.sinks: list[tuple[Callable[[Any], None], bool]] = []

    def add(self, to: str, fn: Function, args: tuple[Any, ...], sink: Callable[[Any], None], *, optional: bool = False) -> None:
        """`optional`: a failure reaches the sink as a `_Failed` instead of raising."""
        self.calls.append((to, fn, args))
        self.sinks.append((sink, optional))

    def __len__(self) -> int:
        return len(self.calls)

    def run(self, at: _Pinned) -> None:
        calls, sinks = self.calls, self.sinks
        self.calls, self.sinks = [], []
        replies = at.read(calls, tolerate=True)
        for (to, fn, args), (sink, optional), value in zip(calls, sinks, replies, strict=True):
            if isinstance(value, _Failed) and not optional:
                raise LiqbotError(f"{fn.name}{args} on {to} at block {int(at.tag, 16)}: {value}")
            sink(value)


def failed(value: Any) -> bool:
    return isinstance(value, _Failed)


class _User:
    def __init__(self, address: str):
        self.address = address
        self.config = 0
        self.emode = 0
        self.balances: dict[int, list[int]] = {}  # reserve id -> [scaled collateral, scaled debt]
        self.stable: dict[int, list[int]] = {}  # reserve id -> [principal, rate, last update]

    def setter(self, table: dict[int, list[int]], rid: int, k: int, width: int) -> Callable[[Any], None]:
        def sink(value: Any) -> None:
            table.setdefault(rid, [0] * width)[k] = value
        return sink


class UserReader:
    """Users' configuration, e-mode and scaled balances at one block, in at most two round trips: the
    reserves a user is expected to use (`first`'s candidates) are read with its configuration; those its
    configuration shows beyond them, in a second round (`second`). v3.0-3.1 stable debts come with the
    balances of every borrowed reserve that has a stable debt token."""

    def __init__(self, pool: str, rules: AccountRules, reserves: Sequence[ReserveState | None],
                 tokens: Sequence[ReserveTokens | None]):
        self.pool, self.rules, self.reserves, self.tokens = pool, rules, reserves, tokens
        self.users: dict[str, _User] = {}

    def _exists(self, rid: int) -> bool:
        return rid < len(self.reserves) and self.reserves[rid] is not None and self.tokens[rid] is not None

    def _balances(self, batch: Batch, u: _User, rid: int, stable: bool = True) -> None:
        if not self._exists(rid) or rid in u.balances:
            return
        a_token, stable_token, variable_token = self.tokens[rid]  # type: ignore[misc]
        u.balances[rid] = [0, 0]
        batch.add(a_token, aave.SCALED_BALANCE_OF, (u.address,), u.setter(u.balances, rid, 0, 2))
        batch.add(variable_token, aave.SCALED_BALANCE_OF, (u.address,), u.setter(u.balances, rid, 1, 2))
        if stable and self.rules.stable_debt and stable_token != ZERO_ADDRESS:
            u.stable[rid] = [0, 0, 0]
            for k, fn in enumerate((aave.PRINCIPAL_BALANCE_OF, aave.GET_USER_STABLE_RATE, aave.GET_USER_LAST_UPDATED)):
                batch.add(stable_token, fn, (u.address,), u.setter(u.stable, rid, k, 3))

    def first(self, batch: Batch, users: Mapping[str, Iterable[int]]) -> None:
        for address, candidates in users.items():
            u = self.users[address] = _User(address)
            batch.add(self.pool, aave.GET_USER_CONFIGURATION, (address,), partial(setattr, u, "config"))
            batch.add(self.pool, aave.GET_USER_EMODE, (address,), partial(setattr, u, "emode"))
            for rid in sorted(set(candidates)):
                self._balances(batch, u, rid)

    def used(self, u: _User) -> list[int]:
        return [rid for rid in range(len(self.reserves)) if self._exists(rid) and (u.config >> (2 * rid)) & 3]

    def second(self, batch: Batch) -> int:
        """Queue what the configurations showed beyond the candidates; returns the calls added."""
        before = len(batch)
        for u in self.users.values():
            for rid in self.used(u):
                self._balances(batch, u, rid, stable=bool((u.config >> (2 * rid)) & 1))
        return len(batch) - before

    def states(self) -> dict[str, UserState]:
        out = {}
        for address, u in self.users.items():
            ids = self.used(u)
            stable = tuple(StableDebt(*u.stable[rid]) if rid in u.stable and u.stable[rid][0] and (u.config >> (2 * rid)) & 1
                           else None for rid in ids)
            out[address] = UserState(u.config, u.emode, tuple(ids), tuple(u.balances[rid][0] for rid in ids),
                                     tuple(u.balances[rid][1] for rid in ids), stable if any(stable) else ())
        return out


def reserve_reader(batch: Batch, pool: str, asset: str,
                   sink: Callable[[str, ReserveState | None, ReserveTokens | None], None]) -> None:
    """`getReserveData(asset)`: its state and tokens, or None for a dropped reserve (all zeros)."""
    def got(d: Any) -> None:
        if d[8] == ZERO_ADDRESS:
            sink(asset, None, None)
        else:
            sink(asset, ReserveState(d[7], d[0], d[1], d[2], d[3], d[4], d[6]), ReserveTokens(d[8], d[9], d[10]))
    batch.add(pool, aave.GET_RESERVE_DATA, (asset,), got)


def category_reader(batch: Batch, pool: str, rules: AccountRules, category: int,
                    sink: Callable[[EModeCategory, int], None]) -> None:
    """An e-mode category and its liquidation bonus, as the deployed revision stores them."""
    if rules.emode_by_asset_category:
        def v30(got: Any) -> None:
            ltv, lt, bonus, source, _ = got
            sink(EModeCategory(category, ltv, lt, price_source=None if source == ZERO_ADDRESS else source), bonus)
        batch.add(pool, aave.GET_EMODE_CATEGORY_DATA, (category,), v30)
        return
    parts: dict[str, Any] = {}
    names = ["config", "bitmap"] + (["ltvzero"] if rules.ltvzero_bitmap else [])

    def part(name: str) -> Callable[[Any], None]:
        def got(value: Any) -> None:
            parts[name] = value
            if len(parts) == len(names):
                ltv, lt, bonus = parts["config"]
                sink(EModeCategory(category, ltv, lt, collateral_bitmap=parts["bitmap"], ltvzero_bitmap=parts.get("ltvzero", 0)),
                     bonus)
        return got
    batch.add(pool, aave.GET_EMODE_CATEGORY_COLLATERAL_CONFIG, (category,), part("config"))
    batch.add(pool, aave.GET_EMODE_CATEGORY_COLLATERAL_BITMAP, (category,), part("bitmap"))
    if rules.ltvzero_bitmap:
        batch.add(pool, aave.GET_EMODE_CATEGORY_LTVZERO_BITMAP, (category,), part("ltvzero"))


def prices_reader(batch: Batch, oracle: str, assets: Sequence[str], sink: Callable[[dict[str, int]], None]) -> None:
    """One `getAssetsPrices` for every asset: the oracle's answer, fallback and base currency included."""
    if assets:
        batch.add(oracle, aave.GET_ASSETS_PRICES, (list(assets),), lambda got: sink(dict(zip(assets, got, strict=True))))


def read_sources(at: _Pinned, oracle: str, prices: Mapping[str, int],
                 known: Mapping[str, str] | None = None) -> list[PriceSource]:
    """How each asset's price moves (see feeds.py), from its source at the block: the source (unless
    `known`), its `aggregator()` when it is a proxy, and both their answers. Up to three round trips."""
    sources: dict[str, str] = dict(known or {})
    base: list[Any] = []
    batch = Batch()
    batch.add(oracle, aave.BASE_CURRENCY, (), base.append, optional=True)
    for asset in prices:
        if asset not in sources:
            batch.add(oracle, aave.GET_SOURCE_OF_ASSET, (asset,), partial(sources.__setitem__, asset))
    batch.run(at)
    base_currency = None if failed(base[0]) else base[0]
    answers: dict[str, Any] = {}
    aggregators: dict[str, Any] = {}
    for source in set(sources.values()) - {ZERO_ADDRESS}:
        batch.add(source, aave.LATEST_ANSWER, (), partial(answers.__setitem__, source), optional=True)
        batch.add(source, aave.AGGREGATOR, (), partial(aggregators.__setitem__, source), optional=True)
    batch.run(at)
    behind = {a for a in aggregators.values() if not failed(a) and a != ZERO_ADDRESS and a not in answers}
    for agg in behind:
        batch.add(agg, aave.LATEST_ANSWER, (), partial(answers.__setitem__, agg), optional=True)
    batch.run(at)

    def answer(contract: str | None) -> int | None:
        value = answers.get(contract) if contract else None
        return None if value is None or failed(value) else value
    out = []
    for asset, price in prices.items():
        source = sources[asset]
        agg = aggregators.get(source)
        agg = None if agg is None or failed(agg) else agg
        out.append(classify(asset, source, price, answer(source), agg, answer(agg), base_currency))
    return out


def load_mirror(rpc: Rpc, pool: str, users: Iterable[str], *, block: int | None = None, chunk: int = 1000) -> Mirror:
    """Everything `getUserAccountData` reads for `users`, at `block` (default: the latest)."""
    header = rpc.call("eth_getBlockByNumber", "latest" if block is None else hex(block), False)
    if not header:
        raise LiqbotError(f"block {block} not found")
    number, timestamp = int(header["number"], 16), int(header["timestamp"], 16)
    at = _Pinned(rpc, number, chunk)
    pool = to_checksum_address(pool)

    revision, assets, provider = at.read([(pool, aave.POOL_REVISION, ()), (pool, aave.GET_RESERVES_LIST, ()),
                                          (pool, aave.ADDRESSES_PROVIDER, ())], tolerate=True)
    if failed(revision):
        raise UnsupportedRevision(f"Pool {pool} answers no POOL_REVISION() at block {number}: {revision}")
    rules = rules_for_revision(revision)
    for what, value in (("getReservesList", assets), ("ADDRESSES_PROVIDER", provider)):
        if failed(value):
            raise LiqbotError(f"{what} on Pool {pool} at block {number}: {value}")
    addresses = list(dict.fromkeys(to_checksum_address(u) for u in users))

    # Round 2: the oracle the Pool asks (the provider's, at this block), reserves, users' configuration.
    batch = Batch()
    got: dict[str, Any] = {}
    batch.add(provider, aave.GET_PRICE_ORACLE, (), lambda v: got.__setitem__("oracle", v))
    batch.add(provider, aave.GET_POOL_CONFIGURATOR, (), lambda v: got.__setitem__("configurator", v), optional=True)
    datas: dict[str, tuple[ReserveState | None, ReserveTokens | None]] = {}
    for asset in assets:
        reserve_reader(batch, pool, asset, lambda a, state, tokens: datas.__setitem__(a, (state, tokens)))
    reader = UserReader(pool, rules, [], [])  # the reserves are known once this round is back
    reader.first(batch, dict.fromkeys(addresses, ()))
    batch.run(at)
    oracle = got["oracle"]
    configurator = "" if failed(got["configurator"]) else got["configurator"]
    size = max((s.id for s, _ in datas.values() if s), default=-1) + 1
    reserves: list[ReserveState | None] = [None] * size
    by_id: list[str | None] = [None] * size
    tokens: list[ReserveTokens | None] = [None] * size
    for asset, (state, toks) in datas.items():
        if state is not None:
            reserves[state.id], by_id[state.id], tokens[state.id] = state, asset, toks
    reader.reserves, reader.tokens = reserves, tokens

    # Round 3: prices, the e-mode categories in use, scaled balances (and stable debts) of used reserves.
    categories = sorted({u.emode for u in reader.users.values() if u.emode})
    cats: dict[int, EModeCategory] = {}
    bonuses: dict[int, int] = {}
    prices_by_asset: dict[str, int] = {}
    prices_reader(batch, oracle, list(assets), prices_by_asset.update)

    def category(cat: EModeCategory, bonus: int) -> None:
        cats[cat.id], bonuses[cat.id] = cat, bonus
    for c in categories:
        category_reader(batch, pool, rules, c, category)
    reader.second(batch)
    batch.run(at)
    prices = tuple(prices_by_asset[a] if a else 0 for a in by_id)

    # Round 4, only where needed: e-mode price sources (v3.0-3.1).
    sources = sorted({cat.price_source for cat in cats.values() if cat.price_source})
    source_price: dict[str, int] = {}
    prices_reader(batch, oracle, sources, source_price.update)
    batch.run(at)
    emode_prices = {c: source_price.get(cat.price_source, 0) for c, cat in cats.items() if cat.price_source}

    states = reader.states()
    market = MarketState(rules, tuple(reserves), prices, cats, emode_prices)
    log.info("mirror: block %d, revision %d (v%s), %d reserves, %d users, %d e-mode categories, %d stable debts",
             number, rules.revision, rules.version, len(assets), len(states), len(cats),
             sum(1 for st in states.values() for s in st.stable if s))
    return Mirror(number, timestamp, pool, oracle, market, tuple(by_id), states, tokens=tuple(tokens), emode_bonus=bonuses,
                  provider=provider, configurator=configurator)
