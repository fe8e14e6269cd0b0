"""The mirror's screen never misses a user the exact math puts below HF 1, and the pure parts of the live
mirror (planning a block's logs, following prices) do what the chain does.

The property: on random markets of every account-math revision (thresholds of 0, 0-18 decimals, prices
from a cent to a million, e-mode categories, v3.0 stable debt and category price sources), random users
tuned to sit within a hair of HF 1 and random price moves and time jumps, the screen's confirmed set
EQUALS the brute-force exact set.
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
from eth_abi import encode
from eth_utils import to_checksum_address

from liqbot.chain import aave
from liqbot.chain.abi import Event
from liqbot.domain.account import (
    EModeCategory,
    MarketState,
    ReserveState,
    StableDebt,
    UserState,
    account_data,
    market_at,
    rules_for_revision,
)
from liqbot.domain.units import RAY, WAD, ZERO_ADDRESS
from liqbot.mirror import Mirror, Screen
from liqbot.mirror.events import plan_block
from liqbot.mirror.feeds import PriceSources, classify
from liqbot.mirror.screen import screen

T0 = 1_000_000
YEAR = 365 * 24 * 3600


def cfg(ltv: int, lt: int, decimals: int, emode: int = 0, bonus: int = 10_500) -> int:
    return ltv | lt << 16 | bonus << 32 | decimals << 48 | 1 << 56 | emode << 168 | 1 << 252


def address(i: int) -> str:
    return to_checksum_address(f"0x{i + 1:040x}")


def random_market(rng: random.Random, revision: int) -> tuple[MarketState, tuple[str, ...]]:
    rules = rules_for_revision(revision)
    n = rng.randint(3, 8)
    assets = tuple(address(1000 + i) for i in range(n))
    decimals = [rng.choice([0, 2, 6, 8, 18, 18]) for _ in range(n)]
    categories = [1, 2] if rng.random() < 0.7 else []
    reserves, prices = [], []
    for rid in range(n):
        lt = 0 if rng.random() < 0.15 else rng.randint(5_000, 9_700)
        ltv = rng.randint(0, lt) if lt else 0
        byte = rng.choice([0, *categories]) if rules.emode_by_asset_category else 0
        indexes = (rng.randint(RAY, 13 * RAY // 10), rng.randint(0, 3 * RAY // 10), rng.randint(RAY, 15 * RAY // 10),
                   rng.randint(0, 8 * RAY // 10))
        reserves.append(ReserveState(rid, cfg(ltv, lt, decimals[rid], byte), *indexes, T0 - rng.randint(0, 1_000)))
        prices.append(max(1, int(10 ** rng.uniform(-2, 6) * 10**8)))
    emodes, emode_prices = {}, {}
    for c in categories:
        lt = rng.randint(9_000, 9_800)
        if rules.emode_by_asset_category:
            source = rng.choice([None, assets[rng.randrange(n)], address(5_000 + c)])
            emodes[c] = EModeCategory(c, lt - 200, lt, price_source=source)
            if source:
                own = max(1, int(10 ** rng.uniform(-2, 6) * 10**8))
                emode_prices[c] = prices[assets.index(source)] if source in assets else own
        else:
            bitmap = sum(1 << rid for rid in range(n) if rng.random() < 0.5)
            ltvzero = sum(1 << rid for rid in range(n) if rng.random() < 0.2) if rules.ltvzero_bitmap else 0
            emodes[c] = EModeCategory(c, lt - 200, lt, collateral_bitmap=bitmap, ltvzero_bitmap=ltvzero)
    return MarketState(rules, tuple(reserves), tuple(prices), emodes, emode_prices), assets


def random_user(rng: random.Random, market: MarketState, ts: int) -> UserState:
    """One to three collaterals, one or two debts, values from a tenth of a cent to ten million USD; most users
    tuned so that their exact health factor is 1 within 1e-12 .. 1e-3 (either side)."""
    n = len(market.reserves)
    at = market_at(market, ts)
    colls = rng.sample(range(n), rng.randint(1, min(3, n)))
    debts = rng.sample(range(n), rng.randint(1, min(2, n)))
    emode = rng.choice([0, 0, *market.emodes]) if market.emodes else 0
    scaled_c, scaled_d, stable = {}, {}, {}
    for rid in colls:
        unit = 10 ** ((market.reserves[rid].configuration >> 48) & 0xFF)
        amount = int(10 ** rng.uniform(-3, 7) * 10**8 * unit / market.prices[rid]) + rng.randint(0, 3)
        scaled_c[rid] = amount * RAY // at.income[rid] + 1
    for rid in debts:
        unit = 10 ** ((market.reserves[rid].configuration >> 48) & 0xFF)
        amount = int(10 ** rng.uniform(-3, 7) * 10**8 * unit / market.prices[rid]) + 1
        if market.rules.stable_debt and rng.random() < 0.3:
            stable[rid] = StableDebt(amount, rng.randint(0, 4 * RAY // 10), ts - rng.randint(0, YEAR))
            if rng.random() < 0.5:
                continue
        scaled_d[rid] = amount * RAY // at.debt_index[rid] + 1

    def build(factor: float = 1.0) -> UserState:
        ids = sorted(set(scaled_c) | set(scaled_d) | set(stable))
        config = sum(2 << (2 * r) for r in scaled_c) | sum(1 << (2 * r) for r in set(scaled_d) | set(stable))
        stables = tuple(replace(stable[r], principal=max(1, int(stable[r].principal * factor))) if r in stable else None
                        for r in ids) if stable else ()
        return UserState(config, emode, tuple(ids), tuple(scaled_c.get(r, 0) for r in ids),
                         tuple(max(1, int(scaled_d[r] * factor)) if r in scaled_d else 0 for r in ids), stables)

    user = build()
    hf = account_data(at, user).health_factor
    if rng.random() < 0.7 and 0 < hf < 10**40:
        sign = rng.choice([-1, 1])
        user = build(hf / WAD * (1 + sign * 10 ** rng.uniform(-12, -3)))
    return user


def exposed(mirror: Mirror, user: UserState, asset: str) -> bool:
    rid = mirror.reserve_id(asset)
    for i, r in enumerate(user.reserve_ids):
        bits = (user.config >> (2 * r)) & 3
        stable = user.stable[i] if user.stable else None
        if r == rid and ((bits & 2 and user.scaled_collateral[i]) or (bits & 1 and (user.scaled_debt[i] or stable))):
            return True
    return any(c == user.emode and cat.price_source == asset for c, cat in mirror.market.emodes.items())


@pytest.mark.parametrize("revision", [1, 4, 5, 7, 8, 9, 10])
@pytest.mark.parametrize("seed", range(6))
def test_the_screen_finds_exactly_the_users_the_integer_math_finds(revision, seed):
    rng = random.Random(revision * 1000 + seed)
    market, assets = random_market(rng, revision)
    users = {address(i): random_user(rng, market, T0) for i in range(300)}
    mirror = Mirror(1, T0, "pool", "oracle", market, assets, users)
    index = Screen(market)
    index.rebuild(users)
    missed_candidates = 0
    for _ in range(8):
        asset = rng.choice([*assets, *(cat.price_source for cat in market.emodes.values() if cat.price_source)])
        old = mirror.price(asset)
        new = max(1, int(old * rng.choice([rng.uniform(0.6, 1.4), 1 + rng.uniform(-1e-6, 1e-6)])))
        mirror.set_price(asset, new)
        ts = T0 + rng.choice([0, rng.randint(1, 3600), rng.randint(1, 2 * YEAR)])
        found, refused = screen(mirror, index, [asset], ts)
        assert not refused
        brute = {u for u, st in users.items() if exposed(mirror, st, asset) and mirror.account(u, ts).liquidatable}
        assert {a.user for a in found} == brute, f"moved {asset} to {new} at {ts}"
        assert [a.health_factor for a in found] == sorted(a.health_factor for a in found)
        everyone, _ = screen(mirror, index, None, ts)
        assert {a.user for a in everyone} == {u for u in users if mirror.account(u, ts).liquidatable}
        candidates = set(index.candidates(mirror.at(ts)))
        missed_candidates += len(brute - candidates)
    assert missed_candidates == 0


@pytest.mark.parametrize("revision", [1, 10])
def test_the_screen_narrows_to_users_within_a_hair_of_one(revision):
    """With real positions (six or more decimals, at least 100 USD), every candidate is within 3e-4 of HF 1:
    the margin is a few bps on v3.0 (the truncated threshold), a few ulps on v3.5+."""
    rng = random.Random(7 + revision)
    market, assets = random_market(rng, revision)
    reserves = tuple(replace(r, configuration=cfg(7_000, 8_000, 18, (r.configuration >> 168) & 0xFF)) for r in market.reserves)
    market = replace(market, reserves=reserves, prices=tuple(max(p, 10**8) for p in market.prices))
    users = {address(i): random_user(rng, market, T0) for i in range(1_000)}
    mirror = Mirror(1, T0, "pool", "oracle", market, assets, users)
    index = Screen(market)
    index.rebuild(users)
    for u in index.candidates(mirror.at(T0 + 600)):
        acc = mirror.account(u, T0 + 600)
        if acc.collateral_base >= 100 * 10**8:
            assert acc.health_factor < WAD * (1 + 3e-4), acc


def test_rows_follow_their_users_and_the_configuration():
    """Updating rows one by one, dropping a repaid user, a threshold change and a reserve id reused with
    other decimals give the floats a rebuild from scratch gives."""
    rng = random.Random(5)
    market, _ = random_market(rng, 1)
    users = {address(i): random_user(rng, market, T0) for i in range(200)}
    index = Screen(market)
    index.rebuild(users)
    changed = dict(users)
    for u in rng.sample(sorted(users), 50):
        changed[u] = random_user(rng, market, T0)
        index.update(u, changed[u])
    repaid = sorted(users)[0]
    changed[repaid] = replace(changed[repaid], scaled_debt=tuple(0 for _ in changed[repaid].scaled_debt), stable=())
    index.update(repaid, changed[repaid])
    assert repaid not in index.rows
    reserve = market.reserves[0]
    market = replace(market, reserves=(replace(reserve, configuration=cfg(1_000, 2_000, 18)), *market.reserves[1:]))
    index.configure(market)
    fresh = Screen(market)
    fresh.rebuild(changed)
    at = market_at(market, T0 + 100)
    for user in changed:
        if user in fresh.rows:
            a, b = index.rows[user], fresh.rows[user]
            assert np.allclose(index.wcoll[:, a], fresh.wcoll[:, b], rtol=1e-14, atol=0)
            assert np.allclose(index.debt[:, a], fresh.debt[:, b], rtol=1e-14, atol=0)
    lo1, hi1 = index.bounds(at)
    lo2, hi2 = fresh.bounds(at)
    rows1 = [index.rows[u] for u in fresh.users if u]
    rows2 = [fresh.rows[u] for u in fresh.users if u]
    assert np.allclose(lo1[rows1], lo2[rows2], rtol=1e-12)
    assert np.allclose(hi1[rows1], hi2[rows2], rtol=1e-12)


# --- planning a block's logs -------------------------------------------------------------------------
POOL, CONFIGURATOR, ORACLE = address(1), address(2), address(3)
A_TOKEN, FEED, WETH, USDC = address(4), address(5), address(6), address(7)


def log(event: Event, at: str, block: int, position: int, /, **args) -> dict:
    topics = [event.topic0] + ["0x" + encode([t], [args[n]]).hex() for t, n, indexed in event.args if indexed]
    plain = [(t, n) for t, n, indexed in event.args if not indexed]
    data = "0x" + encode([t for t, _ in plain], [args[n] for _, n in plain]).hex()
    return {"address": at.lower(), "topics": topics, "data": data, "blockNumber": hex(block), "logIndex": hex(position)}


def plan(logs: list[dict]):
    return plan_block(logs, 7, pool=POOL, configurator=CONFIGURATOR, oracle=ORACLE, a_tokens={A_TOKEN: WETH}, feeds={FEED})


def test_a_block_plan_decodes_rates_and_answers_and_names_what_to_read():
    u1, u2, u3 = address(10), address(11), address(12)
    rates = {"liquidityRate": 1, "stableBorrowRate": 0, "variableBorrowRate": 2, "liquidityIndex": RAY + 5,
             "variableBorrowIndex": RAY + 6}
    logs = [
        log(aave.RESERVE_DATA_UPDATED_EVENT, POOL, 7, 9, reserve=WETH, **{**rates, "liquidityIndex": RAY + 50}),
        log(aave.RESERVE_DATA_UPDATED_EVENT, POOL, 7, 3, reserve=WETH, **rates),  # earlier in the block: loses
        log(aave.SUPPLY_EVENT, POOL, 7, 1, reserve=USDC, user=u3, onBehalfOf=u1, amount=5, referralCode=0),
        log(aave.BALANCE_TRANSFER_EVENT, A_TOKEN, 7, 4, **{"from": u1, "to": u2, "value": 1, "index": RAY}),
        log(aave.BALANCE_TRANSFER_EVENT, address(99), 7, 5, **{"from": u1, "to": u3, "value": 1, "index": RAY}),
        log(aave.LIQUIDATION_CALL_EVENT, POOL, 7, 6, collateralAsset=WETH, debtAsset=USDC, user=u2, debtToCover=1,
            liquidatedCollateralAmount=1, liquidator=u3, receiveAToken=True),
        log(aave.ANSWER_UPDATED_EVENT, FEED, 7, 7, current=10, roundId=1, updatedAt=0),
        log(aave.ANSWER_UPDATED_EVENT, FEED, 7, 8, current=11, roundId=2, updatedAt=0),
        log(aave.ANSWER_UPDATED_EVENT, address(98), 7, 10, current=12, roundId=2, updatedAt=0),  # not a feed of ours
        log(aave.COLLATERAL_CONFIGURATION_CHANGED_EVENT, CONFIGURATOR, 7, 11, asset=USDC, ltv=1, liquidationThreshold=2,
            liquidationBonus=3),
        log(aave.ASSET_COLLATERAL_IN_EMODE_CHANGED_EVENT, CONFIGURATOR, 7, 12, asset=USDC, categoryId=3, collateral=True),
        log(aave.EMODE_EVENT, POOL, 7, 13, user=u3, categoryId=4),
        log(aave.ASSET_SOURCE_UPDATED_EVENT, ORACLE, 7, 14, asset=USDC, source=address(97)),
        {"address": POOL, "topics": [aave.SUPPLY_EVENT.topic0], "data": "0x", "blockNumber": hex(7), "logIndex": "0xf"},
    ]
    p = plan(logs)
    assert p.rates == {WETH: (1, 2, RAY + 50, RAY + 6)}
    assert p.answers == {FEED: 11}
    assert p.users == {u1: {USDC, WETH}, u2: {WETH, USDC}, u3: set()}
    assert p.reserves == {USDC}
    assert p.indexes == {WETH}  # a liquidation taking aTokens moved WETH's indexes without an event
    assert p.categories == {3}
    assert p.entered == {4}
    assert p.sources == {USDC: address(97)}
    assert p.skipped == 1


def test_a_log_of_another_block_is_refused():
    p = plan([log(aave.EMODE_EVENT, POOL, 8, 0, user=address(10), categoryId=1)])
    assert p.skipped == 1
    assert not p.users


def test_prices_follow_direct_feeds_and_read_the_rest():
    proxy, aggregator, adapter, base = address(20), address(21), address(22), address(23)
    sources = PriceSources()
    sources.update([
        classify(WETH, proxy, 2000, 2000, aggregator, 2000),  # a Chainlink proxy: both answer the price
        classify(USDC, adapter, 100, 7, None, None),  # an adapter: its answer is not the price
        classify(base, address(24), 10**8, 5, None, None, base_currency=base),  # the base currency: no feed at all
        classify(address(25), ZERO_ADDRESS, 1, None, None, None),  # the fallback oracle prices it
    ])
    assert sources.by_asset[WETH].direct
    assert sources.by_asset[WETH].feeds == (proxy, aggregator)
    assert not sources.by_asset[USDC].direct
    assert sources.feeds == sorted([proxy, aggregator, adapter])
    assert sources.on_answers({aggregator: 2100, adapter: 8}) == ({WETH: 2100}, {USDC})
    assert sources.on_answers({aggregator: 0}) == ({}, {WETH})  # the oracle would ask its fallback
    sources.watch(address(26), [WETH])
    assert sources.on_answers({address(26): 5}) == ({}, {WETH})


def test_compare_counts_any_difference_in_the_compared_fields_and_ignores_unread_users():
    from liqbot.domain.health import AccountData
    from liqbot.mirror.audit import compare

    same = AccountData("0xa", 10, 5, 1, 8000, 7000, 16 * 10**17)
    chain = {"0xa": same, "0xb": AccountData("0xb", 10, 5, 1, 8000, 7000, 10**18),
             "0xc": AccountData("0xc", 10, 5, 99, 8000, 6000, 10**18)}
    mirror = {"0xa": same, "0xb": AccountData("0xb", 10, 5, 1, 8000, 7000, 10**18 + 1),
              "0xc": AccountData("0xc", 10, 5, 1, 8000, 7000, 10**18), "0xd": same}
    (drift,) = compare(mirror, chain)  # available borrows and LTV are not compared; 0xd was not read
    assert drift.user == "0xb"
    assert drift.describe() == f"health_factor: mirror {10**18 + 1} chain {10**18}"
