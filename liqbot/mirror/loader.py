"""Bootstrap a mirror from the chain: JSON-RPC batches, every call pinned to one block number.

Four rounds whatever the number of users (each split into batches of `chunk` calls): the Pool's
revision and reserve list; the oracle, every reserve's data and each user's configuration and e-mode;
prices, the e-mode categories in use and each used reserve's scaled balances; then, only where they
exist, e-mode price sources and v3.0 stable debts. Pinning matters: a mirror mixing two blocks would
disagree with the Pool at both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from eth_utils import to_checksum_address

from liqbot.chain import aave
from liqbot.chain.abi import Function
from liqbot.chain.rpc import Rpc
from liqbot.domain.account import (
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
from liqbot.mirror.state import Mirror

log = logging.getLogger(__name__)

Call = tuple[str, Function, tuple[Any, ...]]


class _Pinned:
    """eth_calls at one block, batched in chunks, decoded; an error names the call that failed."""

    def __init__(self, rpc: Rpc, block: int, chunk: int):
        self.rpc, self.tag, self.chunk = rpc, hex(block), chunk

    def read(self, calls: Sequence[Call], *, tolerate: bool = False) -> list[Any]:
        out: list[Any] = []
        for start in range(0, len(calls), self.chunk):
            part = calls[start : start + self.chunk]
            replies = self.rpc.batch(
                [("eth_call", [{"to": to, "data": fn.calldata(*args)}, self.tag]) for to, fn, args in part], raise_errors=False)
            for (to, fn, args), raw in zip(part, replies, strict=True):
                if isinstance(raw, RpcError):
                    if tolerate:
                        out.append(raw)
                        continue
                    raise LiqbotError(f"{fn.name}{args} on {to} at block {int(self.tag, 16)}: {raw}")
                out.append(fn.decode(raw))
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
    if isinstance(revision, RpcError):
        raise UnsupportedRevision(f"Pool {pool} answers no POOL_REVISION() at block {number}: {revision}")
    rules = rules_for_revision(revision)
    for what, value in (("getReservesList", assets), ("ADDRESSES_PROVIDER", provider)):
        if isinstance(value, RpcError):
            raise LiqbotError(f"{what} on Pool {pool} at block {number}: {value}")
    addresses = list(dict.fromkeys(to_checksum_address(u) for u in users))

    # Round 2: the oracle the Pool asks (the provider's, at this block), reserves, users' configuration.
    replies = at.read([(provider, aave.GET_PRICE_ORACLE, ()), *((pool, aave.GET_RESERVE_DATA, (a,)) for a in assets),
                       *((pool, fn, (u,)) for u in addresses for fn in (aave.GET_USER_CONFIGURATION, aave.GET_USER_EMODE))])
    oracle, datas, per_user = replies[0], replies[1 : 1 + len(assets)], replies[1 + len(assets) :]
    size = max((d[7] for d in datas), default=-1) + 1
    reserves: list[ReserveState | None] = [None] * size
    by_id: list[str | None] = [None] * size
    tokens: dict[int, tuple[str, str, str]] = {}  # id -> aToken, stable debt token, variable debt token
    for asset, d in zip(assets, datas, strict=True):
        reserves[d[7]] = ReserveState(d[7], d[0], d[1], d[2], d[3], d[4], d[6])
        by_id[d[7]] = asset
        tokens[d[7]] = (d[8], d[9], d[10])
    configs = per_user[0::2]
    emodes = per_user[1::2]
    used = [[rid for rid in range(size) if reserves[rid] is not None and (config >> (2 * rid)) & 3] for config in configs]

    # Round 3: prices, the e-mode categories in use, stable debt supplies, scaled balances.
    categories = sorted({e for e in emodes if e})
    if rules.emode_by_asset_category:
        emode_fns: tuple[Function, ...] = (aave.GET_EMODE_CATEGORY_DATA,)
    else:
        emode_fns = (aave.GET_EMODE_CATEGORY_COLLATERAL_CONFIG, aave.GET_EMODE_CATEGORY_COLLATERAL_BITMAP)
        if rules.ltvzero_bitmap:
            emode_fns += (aave.GET_EMODE_CATEGORY_LTVZERO_BITMAP,)
    stable_ids = [rid for rid, (_, s, _) in tokens.items() if rules.stable_debt and s != ZERO_ADDRESS]
    calls: list[Call] = [(oracle, aave.GET_ASSETS_PRICES, (list(assets),))]
    calls += [(pool, fn, (c,)) for c in categories for fn in emode_fns]
    calls += [(tokens[rid][1], aave.TOTAL_SUPPLY, ()) for rid in stable_ids]
    for u, ids in zip(addresses, used, strict=True):
        calls += [(tokens[rid][k], aave.SCALED_BALANCE_OF, (u,)) for rid in ids for k in (0, 2)]
    replies = at.read(calls)
    prices_by_asset = dict(zip(assets, replies[0], strict=True))
    prices = tuple(prices_by_asset[a] if a else 0 for a in by_id)
    pos = 1
    cats: dict[int, EModeCategory] = {}
    for c in categories:
        got = replies[pos : pos + len(emode_fns)]
        pos += len(emode_fns)
        if rules.emode_by_asset_category:
            ltv, lt, _, source, _ = got[0]
            cats[c] = EModeCategory(c, ltv, lt, price_source=None if source == ZERO_ADDRESS else source)
        else:
            ltv, lt, _ = got[0]
            cats[c] = EModeCategory(c, ltv, lt, collateral_bitmap=got[1], ltvzero_bitmap=got[2] if len(got) > 2 else 0)
    stable_live = {rid for rid, supply in zip(stable_ids, replies[pos : pos + len(stable_ids)], strict=True) if supply}
    pos += len(stable_ids)
    balances = replies[pos:]

    # Round 4, only where needed: e-mode price sources (v3.0-3.1) and stable debts.
    sources = sorted({cat.price_source for cat in cats.values() if cat.price_source})
    stable_calls: list[Call] = []
    stable_of: list[tuple[int, int]] = []  # (user index, reserve id) per three calls
    for ui, (u, ids) in enumerate(zip(addresses, used, strict=True)):
        for rid in ids:
            if rid in stable_live and (configs[ui] >> (2 * rid)) & 1:
                stable_calls += [(tokens[rid][1], fn, (u,)) for fn in
                                 (aave.PRINCIPAL_BALANCE_OF, aave.GET_USER_STABLE_RATE, aave.GET_USER_LAST_UPDATED)]
                stable_of.append((ui, rid))
    extra = at.read(([(oracle, aave.GET_ASSETS_PRICES, (sources,))] if sources else []) + stable_calls)
    source_price = dict(zip(sources, extra[0], strict=True)) if sources else {}
    emode_prices = {c: source_price.get(cat.price_source, 0) for c, cat in cats.items() if cat.price_source}
    stables: dict[tuple[int, int], StableDebt] = {}
    found = extra[1:] if sources else extra
    for k, key in enumerate(stable_of):
        principal, rate, updated = found[3 * k : 3 * k + 3]
        if principal:
            stables[key] = StableDebt(principal, rate, updated)

    states: dict[str, UserState] = {}
    pos = 0
    for ui, (u, ids) in enumerate(zip(addresses, used, strict=True)):
        pairs = balances[pos : pos + 2 * len(ids)]
        pos += 2 * len(ids)
        stable = tuple(stables.get((ui, rid)) for rid in ids) if any((ui, rid) in stables for rid in ids) else ()
        states[u] = UserState(configs[ui], emodes[ui], tuple(ids), tuple(pairs[0::2]), tuple(pairs[1::2]), stable)

    market = MarketState(rules, tuple(reserves), prices, cats, emode_prices)
    log.info("mirror: block %d, revision %d (v%s), %d reserves, %d users, %d e-mode categories, %d stable debts",
             number, rules.revision, rules.version, len(assets), len(states), len(cats), len(stables))
    return Mirror(number, timestamp, pool, oracle, market, tuple(by_id), states)
