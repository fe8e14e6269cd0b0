"""The mirror's screen on a synthetic market: one price move, every exposed user found and confirmed.

    .venv/bin/python -m bench.mirror [--users 100000] [--reserves 6] [--moves 50] [--revision 10] [--seed 1]
                                     [--pct=-5,2] [--no-freeze]

Builds `--users` borrowers over `--reserves` reserves (one to three collaterals, one or two debts each,
USD 1k-500k, health factors spread as on a live market: 45% 1.02-1.3, 30% 1.3-1.8, the rest up to 3),
with the indexes of a reserve a month after its last update. Each of `--moves` price moves starts from
the same market: one random asset's feed answers a price moved by a uniform draw from `--pct` (percent),
and the timer covers what the producer would do with that block: `LiveMirror.apply_block` (decode the
AnswerUpdated, set the price: no read) and `liquidatable` (the indexes at the block's time, the
vectorised pass over every row, the exact integer confirmation of each candidate). Prints p50/p99 of
that time, of the pass alone, the candidates and confirmed users per move, and the memory the users
and the screen take (tracemalloc; building the users under it takes about a minute). The loaded
objects are moved out of the garbage collector's way (`gc.freeze()`, as a process holding a mirror
should do once loaded): a full collection, whenever one comes, would walk all 150k of them (~100 ms);
`--no-freeze` leaves them.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc

from eth_abi import encode
from eth_utils import to_checksum_address

from liqbot.chain import aave
from liqbot.domain.account import MarketAt, MarketState, ReserveState, UserState, account_data, market_at, rules_for_revision
from liqbot.domain.units import RAY, WAD
from liqbot.mirror import LiveMirror, Mirror
from liqbot.mirror.feeds import PriceSource, PriceSources

T0 = 1_700_000_000
MONTH = 30 * 24 * 3600
ASSETS = (  # symbol, decimals, price (USD), LTV, liquidation threshold
    ("WETH", 18, 2_000, 8000, 8250), ("WBTC", 8, 40_000, 7000, 7500), ("USDC", 6, 1, 7700, 8000),
    ("DAI", 18, 1, 7500, 8000), ("wstETH", 18, 2_300, 7800, 8100), ("LINK", 18, 15, 5300, 6800),
    ("AAVE", 18, 90, 6600, 7300), ("USDT", 6, 1, 7500, 7800),
)


def build_market(n: int, revision: int, rng: random.Random) -> tuple[MarketState, tuple[str, ...]]:
    reserves, prices, assets = [], [], []
    for rid, (_, decimals, usd, ltv, lt) in enumerate(ASSETS[:n]):
        config = ltv | lt << 16 | 10_500 << 32 | decimals << 48 | 1 << 56 | 1 << 252
        reserves.append(ReserveState(rid, config, RAY + rng.randint(0, RAY // 10), rng.randint(RAY // 100, RAY // 20),
                                     RAY + rng.randint(0, RAY // 5), rng.randint(RAY // 50, RAY // 10), T0 - MONTH))
        prices.append(usd * 10**8)
        assets.append(f"0x{0xA55E7000 + rid:040x}")
    return MarketState(rules_for_revision(revision), tuple(reserves), tuple(prices), {}, {}), tuple(assets)


def build_user(market: MarketState, at: MarketAt, rng: random.Random) -> UserState:
    n = len(market.reserves)
    colls = rng.sample(range(n), rng.choices([1, 2, 3], weights=[60, 30, 10])[0])
    others = [r for r in range(n) if r not in colls] or list(range(n))
    debts = rng.sample(others, min(len(others), rng.choices([1, 2], weights=[70, 30])[0]))
    band = rng.random()
    hf = rng.uniform(1.02, 1.3) if band < 0.45 else rng.uniform(1.3, 1.8) if band < 0.75 else rng.uniform(1.8, 3.0)
    total = 10 ** rng.uniform(3, 5.7)
    weights = [rng.uniform(1, 10) for _ in colls]
    scaled_c, scaled_d, weighted = {}, {}, 0.0
    for rid, w in zip(colls, weights, strict=True):
        usd = total * w / sum(weights)
        unit, price = 10 ** ASSETS[rid][1], market.prices[rid]
        scaled_c[rid] = int(usd * 10**8 * unit / price) * RAY // at.income[rid]
        weighted += usd * ASSETS[rid][4] / 10_000
    dweights = [rng.uniform(1, 10) for _ in debts]
    for rid, w in zip(debts, dweights, strict=True):
        usd = weighted / hf * w / sum(dweights)
        scaled_d[rid] = int(usd * 10**8 * 10 ** ASSETS[rid][1] / market.prices[rid]) * RAY // at.debt_index[rid]
    ids = sorted(set(scaled_c) | set(scaled_d))
    config = sum(2 << (2 * r) for r in scaled_c) | sum(1 << (2 * r) for r in scaled_d)
    return UserState(config, 0, tuple(ids), tuple(scaled_c.get(r, 0) for r in ids), tuple(scaled_d.get(r, 0) for r in ids))


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def answer_log(feed: str, answer: int, block: int, timestamp: int) -> dict:
    """The AnswerUpdated a Chainlink aggregator emits, as eth_subscribe delivers it."""
    word = lambda typ, value: "0x" + encode([typ], [value]).hex()  # noqa: E731
    topics = [aave.ANSWER_UPDATED_EVENT.topic0, word("int256", answer), word("uint256", block)]
    return {"address": feed, "topics": topics,
            "data": word("uint256", timestamp), "blockNumber": hex(block), "blockTimestamp": hex(timestamp),
            "logIndex": "0x0"}


def measure(users: int = 100_000, reserves: int = 6, moves: int = 50, revision: int = 10, seed: int = 1,
            pct_range: tuple[float, float] = (-0.05, 0.02), freeze: bool = True, say=print) -> dict:
    """The figures `main` prints, as data (also the `mirror` phase of `make bench`)."""
    low, high = pct_range
    rng = random.Random(seed)
    market, assets = build_market(reserves, revision, rng)
    feeds = [to_checksum_address(f"0x{0xFEED0000 + rid:040x}") for rid in range(reserves)]
    sources = PriceSources()
    sources.update(PriceSource(a, f, (f,), direct=True) for a, f in zip(assets, feeds, strict=True))

    tracemalloc.start()
    t0 = time.perf_counter()
    at0 = market_at(market, T0)
    states = {f"0x{i + 1:040x}": build_user(market, at0, rng) for i in range(users)}
    users_bytes = tracemalloc.get_traced_memory()[0]
    t1 = time.perf_counter()
    lm = LiveMirror(Mirror(1, T0, "pool", "oracle", market, assets, states), None, sources)  # type: ignore[arg-type]
    built = time.perf_counter() - t1
    total_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    if freeze:
        gc.collect()
        gc.freeze()
    say(f"{users:,} users over {reserves} reserves (revision {revision}) built in {t1 - t0:.1f} s "
        f"(under tracemalloc); screen rows filled in {built * 1000:.0f} ms")
    say(f"memory: users {users_bytes / 2**20:.0f} MB, screen {(total_bytes - users_bytes) / 2**20:.0f} MB "
        f"(arrays {lm.index.nbytes / 2**20:.0f} MB), total {total_bytes / 2**20:.0f} MB")

    times, passes, candidates, confirmed = [], [], [], []
    for _ in range(moves):
        rid = rng.randrange(reserves)
        old = lm.price(assets[rid])
        new = max(1, int(old * (1 + rng.uniform(low, high))))
        block, ts = lm.block + 1, lm.timestamp + rng.randint(1, 60)
        logs = [answer_log(feeds[rid], new, block, ts)]
        start = time.perf_counter()
        applied = lm.apply_block(block, logs)
        found = lm.liquidatable(applied)
        times.append((time.perf_counter() - start) * 1000)
        assert applied.prices == {assets[rid]: new}
        assert applied.round_trips == 0
        at = lm.mirror.at()
        start = time.perf_counter()
        rows = lm.index.candidates(at, {rid})
        passes.append((time.perf_counter() - start) * 1000)
        candidates.append(len(rows))
        confirmed.append(len(found))
        exact = {u for u in rows if account_data(at, states[u]).health_factor < WAD}
        assert {a.user for a in found} == exact
        lm.apply_block(block + 1, [answer_log(feeds[rid], old, block + 1, ts)])  # back to the same market
    per = sum(t - p for t, p in zip(times, passes, strict=True)) / max(1, sum(candidates))
    say(f"one price move (apply its block, screen, exact confirm): p50 {pct(times, 50):.2f} ms, p99 {pct(times, 99):.2f} ms "
        f"(pass alone p50 {pct(passes, 50):.2f} ms, p99 {pct(passes, 99):.2f} ms; ~{per * 1000:.0f} us per candidate)")
    slow = sorted(zip(times, candidates, strict=True))[-3:]
    say("slowest moves (ms, candidates): " + ", ".join(f"{t:.1f} / {c}" for t, c in slow))
    say(f"per move: candidates p50 {pct(candidates, 50):.0f} / max {max(candidates)}, "
        f"confirmed below 1 p50 {pct(confirmed, 50):.0f} / max {max(confirmed)}")
    if freeze:
        gc.unfreeze()
    return {"users": users, "reserves": reserves, "moves": moves, "move_ms": {"p50": pct(times, 50), "p99": pct(times, 99)},
            "pass_ms": {"p50": pct(passes, 50), "p99": pct(passes, 99)},
            "candidates": {"p50": pct(candidates, 50), "max": max(candidates)},
            "confirmed": {"p50": pct(confirmed, 50), "max": max(confirmed)},
            "memory_mb": {"users": users_bytes / 2**20, "screen": (total_bytes - users_bytes) / 2**20,
                          "total": total_bytes / 2**20}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--reserves", type=int, default=6, choices=range(2, len(ASSETS) + 1))
    ap.add_argument("--moves", type=int, default=50)
    ap.add_argument("--revision", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pct", default="-5,2", help="the range of a move, in percent: low,high")
    ap.add_argument("--no-freeze", action="store_true", help="leave the loaded objects to the cyclic garbage collector")
    args = ap.parse_args()
    low, high = (float(x) / 100 for x in args.pct.split(","))
    measure(args.users, args.reserves, args.moves, args.revision, args.seed, (low, high), not args.no_freeze)


if __name__ == "__main__":
    main()
