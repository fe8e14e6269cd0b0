"""The live mirror: loaded at block B, then moved block by block by the market's own logs (the shell).

After `apply_block(N, logs)` the mirror equals the chain at block N: what a block's logs say is decoded
where the log carries it (rates and indexes, a direct feed's answer) and re-read, pinned to block N in one
JSON-RPC batch, where decoding would mean re-implementing the Pool (a user's balances after a supply,
a liquidation or a transfer; a reserve's configuration; an e-mode category; a price behind an adapter or
a new source). A block with only price moves costs no read at all. See events.py for the split and
screen.py for how a price move finds the users it put below HF 1.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from liqbot.chain.rpc import Rpc
from liqbot.domain.account import EModeCategory, NotModelled, ReserveState
from liqbot.domain.health import AccountData
from liqbot.domain.liquidation import ReservePosition
from liqbot.errors import LiqbotError
from liqbot.mirror.events import TOPICS, plan_block
from liqbot.mirror.feeds import PriceSources
from liqbot.mirror.loader import (
    Batch,
    UserReader,
    _Pinned,
    category_reader,
    load_mirror,
    prices_reader,
    read_sources,
    reserve_reader,
)
from liqbot.mirror.screen import Screen, exposed, screen
from liqbot.mirror.state import Mirror, ReserveTokens

log = logging.getLogger(__name__)


class Reorged(LiqbotError):
    """Logs of a block that left the chain: the mirror cannot step back; load it again at the fork."""


@dataclass(frozen=True)
class Applied:
    """What one block changed in the mirror."""

    block: int
    timestamp: int
    users: frozenset[str] = frozenset()  # re-read at this block: their positions moved (or may have)
    new_users: frozenset[str] = frozenset()  # of which first seen in this block
    prices: Mapping[str, int] = field(default_factory=dict)  # asset -> its new price, for prices that changed
    reserves: frozenset[str] = frozenset()  # reserves whose configuration was re-read
    categories: frozenset[int] = frozenset()  # e-mode categories re-read
    filter_changed: bool = False  # log_filter() is not what it was: subscribe again
    round_trips: int = 0
    skipped: int = 0  # malformed logs

    @property
    def moved(self) -> frozenset[str]:
        """Assets whose holders must be screened: a new price, or a new configuration."""
        return frozenset(self.prices) | self.reserves


class LiveMirror:
    """A `Mirror` kept equal to the chain block by block, with its screen; see liqbot/mirror/__init__.py."""

    def __init__(self, mirror: Mirror, rpc: Rpc, sources: PriceSources, *, chunk: int = 1000, follow_new_users: bool = True):
        self.mirror, self.rpc, self.sources, self.chunk = mirror, rpc, sources, chunk
        self.follow_new_users = follow_new_users
        self.index = Screen(mirror.market)
        self.index.rebuild(mirror.users)
        self.index.candidates(mirror.at())  # the first pass pays for first touches: not on a price move
        self.unmodelled: set[str] = set()  # users the exact math refused (v3.3 GHO debt): ask the Pool for them
        self.loaded_at = mirror.block  # its logs are in the state already; a later block's may come in parts

    @classmethod
    def load(cls, rpc: Rpc, pool: str, users: Iterable[str], *, block: int | None = None, chunk: int = 1000,
             follow_new_users: bool = True) -> LiveMirror:
        """`load_mirror` at `block` (default: the latest), plus how each price moves, read at the same block."""
        mirror = load_mirror(rpc, pool, users, block=block, chunk=chunk)
        at = _Pinned(rpc, mirror.block, chunk)
        sources = PriceSources()
        sources.update(read_sources(at, mirror.oracle, {a: mirror.price(a) for a in mirror.priced_assets()}))
        direct = sum(1 for ps in sources.by_asset.values() if ps.direct)
        log.info("mirror: %d prices followed by %d feeds, %d of them read from the answer itself", len(sources.by_asset),
                 len(sources.by_feed), direct)
        return cls(mirror, rpc, sources, chunk=chunk, follow_new_users=follow_new_users)

    # --- what the caller reads -----------------------------------------------------------------------
    @property
    def block(self) -> int:
        return self.mirror.block

    @property
    def timestamp(self) -> int:
        return self.mirror.timestamp

    def log_filter(self) -> dict:
        """The `eth_subscribe("logs", ...)` / `eth_getLogs` filter for every log the mirror needs: the Pool,
        its configurator, the oracle, every aToken and every feed a price follows (one topic-0 list)."""
        m = self.mirror
        addresses = [m.pool, m.configurator, m.oracle, *(t.a_token for t in m.tokens if t), *self.sources.feeds]
        return {"address": sorted({a for a in addresses if a}), "topics": [list(TOPICS)]}

    def price(self, asset: str) -> int:
        return self.mirror.price(asset)

    def account(self, user: str, timestamp: int | None = None) -> AccountData:
        """`getUserAccountData(user)` as the Pool answers at `timestamp` (default: the block's)."""
        return self.mirror.account(user, timestamp)

    def positions(self, user: str, timestamp: int | None = None) -> list[ReservePosition]:
        """The user's reserves as `liquidation.decide` takes them, exact at `timestamp`."""
        return self.mirror.positions(user, timestamp)

    # --- moving it -----------------------------------------------------------------------------------
    def set_price(self, asset: str, price: int, block: int) -> bool:
        """The oracle answers `price` for `asset` from `block` on (e.g. a pending feed update seen before its
        block): the mirror takes it now; applying that block later sets it again. False: a price nothing reads."""
        if block < self.mirror.block:
            raise ValueError(f"a price for block {block} is older than the mirror's block {self.mirror.block}")
        return self.mirror.set_price(asset, price)

    @contextmanager
    def prices_at(self, prices: Mapping[str, int]) -> Iterator[set[str]]:
        """The mirror at these prices for the length of the `with` (a pending update's, to screen and plan at
        before its block), then exactly as it was. Yields the assets whose price this moved."""
        m = self.mirror
        before = m.market
        moved = {a for a, p in prices.items() if self._reads(a) and m.price(a) != p}
        try:
            for asset in moved:
                m.set_price(asset, prices[asset])
            yield moved
        finally:
            m._changed(before)

    def _reads(self, asset: str) -> bool:
        try:
            self.mirror.price(asset)
        except KeyError:
            return False
        return True

    def add_users(self, users: Iterable[str], block: int | None = None) -> set[str]:
        """Follow `users` (new borrowers found elsewhere), read at the mirror's block, which `block` must be."""
        if block is not None and block != self.mirror.block:
            raise ValueError(f"the mirror is at block {self.mirror.block}; users are read at the mirror's block, not {block}")
        m = self.mirror
        wanted = {u: set(m.users[u].reserve_ids) if u in m.users else set() for u in users}
        at, batch = _Pinned(self.rpc, m.block, self.chunk), Batch()
        reader = self._queue_users(batch, wanted)
        batch.run(at)
        self._finish_users(at, batch, reader)
        return set(wanted)

    def apply(self, logs: Sequence[Mapping], *, to_block: int | None = None,
              timestamps: Mapping[int, int] | None = None) -> list[Applied]:
        """Logs of several blocks (an eth_getLogs range, a backfill): each block in order, then `to_block`
        (the range's end, even without logs). Blocks the mirror has already applied are skipped."""
        by_block: dict[int, list[Mapping]] = {}
        for lg in logs:
            by_block.setdefault(int(lg["blockNumber"], 16), []).append(lg)
        out = []
        stamps = timestamps or {}
        for number in sorted(b for b in by_block if b > self.mirror.block or self._continues(b)):
            out.append(self.apply_block(number, by_block[number], stamps.get(number)))
        if to_block is not None and to_block > self.mirror.block:
            out.append(self.apply_block(to_block, [], stamps.get(to_block)))
        return out

    def apply_block(self, block: int, logs: Sequence[Mapping], timestamp: int | None = None) -> Applied:
        """Every log of `block` (from `log_filter()`; others are ignored), after every earlier block's.
        The timestamp comes from the caller (a new head), else the logs' `blockTimestamp`, else the node."""
        m = self.mirror
        if block <= m.block and not self._continues(block):
            raise ValueError(f"block {block} is not after the mirror's block {m.block}")
        if block == m.block:
            timestamp = m.timestamp
        if any(lg.get("removed") for lg in logs):
            raise Reorged(f"block {block} has removed logs: load the mirror again at the fork")
        if timestamp is None:
            stamped = [lg["blockTimestamp"] for lg in logs if lg.get("blockTimestamp")]
            if not stamped:
                stamped = [self.rpc.call("eth_getBlockByNumber", hex(block), False)["timestamp"]]
            timestamp = int(stamped[0], 16)
        plan = plan_block(logs, block, pool=m.pool, configurator=m.configurator, oracle=m.oracle,
                          a_tokens={t.a_token: a for t, a in zip(m.tokens, m.assets, strict=False) if t and a},
                          feeds=self.sources.by_feed)
        at = _Pinned(self.rpc, block, self.chunk)
        batch = Batch()
        filter_before = self.log_filter()
        prices_before = {a: m.price(a) for a in m.priced_assets()}

        # Round 1: every re-read this block needs, in one batch.
        reserves: dict[str, tuple[ReserveState | None, ReserveTokens | None]] = {}
        for asset in plan.reserves | plan.indexes:
            reserve_reader(batch, m.pool, asset, lambda a, state, tokens: reserves.__setitem__(a, (state, tokens)))
        categories: dict[int, tuple[EModeCategory, int]] = {}
        wanted_categories = plan.categories | {c for c in plan.entered if c not in m.market.emodes}
        for c in wanted_categories:
            category_reader(batch, m.pool, m.rules, c, lambda cat, bonus: categories.__setitem__(cat.id, (cat, bonus)))
        direct, to_read = self.sources.on_answers(plan.answers)
        to_read |= set(plan.sources)
        if plan.fallback:
            to_read |= {a for a in m.priced_assets() if not self.sources.by_asset.get(a) or not self.sources.by_asset[a].direct}
        to_read |= {a for a in plan.reserves if m.reserve_id(a) is None}  # a new reserve
        read_prices: dict[str, int] = {}
        prices_reader(batch, m.oracle, sorted(to_read), read_prices.update)
        users: dict[str, set[int]] = {}
        for user, assets in plan.users.items():
            if user not in m.users and not self.follow_new_users:
                continue
            known = set(m.users[user].reserve_ids) if user in m.users else set()
            users[user] = known | {rid for a in assets if (rid := m.reserve_id(a)) is not None}
        new_users = frozenset(u for u in users if u not in m.users)
        listing = any(m.reserve_id(a) is None for a in plan.reserves)
        reader = None if listing else self._queue_users(batch, users)  # with the rest, unless a reserve is new
        batch.run(at)

        # Decoded first, re-reads over them: a re-read is the state at the end of the block.
        for asset, (liquidity_rate, variable_rate, liquidity_index, variable_index) in plan.rates.items():
            rid = m.reserve_id(asset)
            if rid is not None and asset not in reserves:
                m.set_rates(rid, liquidity_rate, variable_rate, liquidity_index, variable_index, timestamp)
        for asset, (state, tokens) in reserves.items():
            m.set_reserve(asset, state, tokens)
        for asset, price in {**direct, **read_prices}.items():
            m.set_price(asset, price)
        for cat, bonus in categories.values():
            self._set_category(at, batch, cat, bonus)
        if reader is None:
            reader = self._queue_users(batch, users)
            batch.run(at)
        self._finish_users(at, batch, reader, configure=bool(plan.reserves or categories))
        if plan.sources or any(s is not None and a not in prices_before for a, (s, _) in reserves.items()):
            new = {a: m.price(a) for a in m.priced_assets() if a in plan.sources or a not in prices_before}
            self.sources.update(read_sources(at, m.oracle, new, known={a: s for a, s in plan.sources.items() if a in new}))
        m.advance(block, timestamp)
        moved = {a: p for a in m.priced_assets() if (p := m.price(a)) != prices_before.get(a)}
        applied = Applied(block, timestamp, frozenset(users), new_users, moved, frozenset(plan.reserves), frozenset(categories),
                          self.log_filter() != filter_before, at.round_trips, plan.skipped)
        if applied.round_trips or applied.prices:
            log.debug("mirror: block %d: %d users, %d prices, %d reserves, %d categories, %d round trips", block, len(users),
                      len(moved), len(reserves), len(categories), at.round_trips)
        return applied

    def _continues(self, block: int) -> bool:
        """More logs of the block applied last (a stream delivers a block's logs in several parts): what they
        say is decoded as absolute values or re-read at the end of that block, so applying them after the
        first part ends in the same state as applying the block whole."""
        return block == self.mirror.block and block != self.loaded_at

    def _set_category(self, at: _Pinned, batch: Batch, cat: EModeCategory, bonus: int) -> None:
        """v3.0-3.1: a category with a price source also needs that source's price (and its feeds)."""
        m = self.mirror
        price = None
        if cat.price_source:
            try:
                price = m.price(cat.price_source)
            except KeyError:
                got: dict[str, int] = {}
                prices_reader(batch, m.oracle, [cat.price_source], got.update)
                batch.run(at)
                price = got[cat.price_source]
                m.set_category(cat, bonus, price)
                self.sources.update(read_sources(at, m.oracle, {cat.price_source: price}))
                return
        m.set_category(cat, bonus, price)

    def _queue_users(self, batch: Batch, users: Mapping[str, Iterable[int]]) -> UserReader:
        """Queue `users`' configuration, e-mode and the balances of their expected reserves."""
        m = self.mirror
        reader = UserReader(m.pool, m.rules, m.market.reserves, m.tokens)
        reader.first(batch, users)
        return reader

    def _finish_users(self, at: _Pinned, batch: Batch, reader: UserReader, configure: bool = False) -> None:
        """The reserves their configuration shows beyond the expected ones, then any e-mode category they
        are in that the mirror does not know; then the users and their screen rows."""
        m = self.mirror
        reader.reserves, reader.tokens = m.market.reserves, m.tokens  # a reserve listed in this block
        if reader.second(batch):
            batch.run(at)
        states = reader.states()
        unknown = {st.emode for st in states.values() if st.emode and st.emode not in m.market.emodes}
        categories: dict[int, tuple[EModeCategory, int]] = {}
        for c in unknown:
            category_reader(batch, m.pool, m.rules, c, lambda cat, bonus: categories.__setitem__(cat.id, (cat, bonus)))
        batch.run(at)
        for cat, bonus in categories.values():
            self._set_category(at, batch, cat, bonus)
        m.users.update(states)
        if configure or categories or len(m.market.reserves) > self.index.n_reserves:
            self.index.configure(m.market)
        for user, st in states.items():
            self.index.update(user, st)

    # --- finding liquidatable users ------------------------------------------------------------------
    def screen(self, assets: Iterable[str] | None = None, timestamp: int | None = None, *,
               categories: Iterable[int] = ()) -> list[AccountData]:
        """Every followed user with debt whose exact health factor is below 1 at `timestamp` (default: the
        block's), lowest first; with `assets`, only users holding one of them (or in one of `categories`,
        or in a v3.0 category priced by one of them). The float pass only narrows; the integer math decides."""
        found, refused = screen(self.mirror, self.index, assets, timestamp, categories)
        self.unmodelled.update(refused)
        return found

    def candidates(self, assets: Iterable[str] | None = None, timestamp: int | None = None, *,
                   categories: Iterable[int] = ()) -> list[str]:
        """The screen's float pass alone: a superset of the users `screen` would return, riskiest first, for a
        caller that confirms them in chunks with `account` (routing the first before confirming the last)."""
        return exposed(self.mirror, self.index, assets, timestamp, categories)

    def liquidatable(self, applied: Applied, timestamp: int | None = None) -> list[AccountData]:
        """After a block: its users checked exactly, and the holders of every asset it moved screened."""
        found = {a.user: a for a in self.screen(applied.moved, timestamp, categories=applied.categories)} \
            if applied.moved or applied.categories else {}
        for user in applied.users - found.keys():
            try:
                acc = self.mirror.account(user, timestamp)
            except NotModelled:
                self.unmodelled.add(user)
                continue
            if acc.liquidatable:
                found[user] = acc
        return sorted(found.values(), key=lambda a: a.health_factor)
