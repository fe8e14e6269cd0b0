"""Seed a devnet market with borrowers whose positions look like a real market's.

Each borrower holds one to three collaterals and one or two debts, with a health factor drawn
from about 1.02 to 3, reproducible from the seed. Borrowing is capped by LTV, which sits below the
liquidation threshold, so a health factor under LT/LTV is reached the way users reach it: borrow
against extra collateral, then withdraw the extra (a withdrawal only needs HF >= 1).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from eth_utils import keccak, to_checksum_address

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.devnet.market import Market
from liqbot.devnet.txs import TxSender
from liqbot.errors import DevnetError

BPS = 10_000
SEED_GAS = 1_500_000
BORROW_HEADROOM_BPS = 9_900  # borrow at most 99% of what LTV allows
HF_MIN_BPS, HF_MAX_BPS = 10_200, 30_000


@dataclass(frozen=True)
class AssetParams:
    symbol: str
    address: str
    decimals: int
    price: int  # base currency units (1e8 = 1 USD)
    ltv: int
    liquidation_threshold: int

    def amount(self, base: int) -> int:
        return base * 10**self.decimals // self.price


@dataclass
class BorrowerPlan:
    address: str
    target_hf_bps: int
    collateral: dict[str, int] = field(default_factory=dict)  # symbol -> token amount
    debt: dict[str, int] = field(default_factory=dict)
    extra: tuple[str, int] | None = None  # collateral supplied only to be withdrawn after borrowing


def borrower_address(seed: int, index: int) -> str:
    return to_checksum_address(keccak(text=f"liqbot-devnet-borrower:{seed}:{index}")[12:])


@dataclass(frozen=True)
class Shape:
    """Optional limits on the borrowers: which assets they use, and a health-factor band (bps)."""

    collaterals: tuple[str, ...] = ()
    debts: tuple[str, ...] = ()
    hf_range: tuple[int, int] | None = None


def _target_hf(rng: random.Random, hf_range: tuple[int, int] | None = None) -> int:
    """Most borrowers near the edge, as in real markets, the rest spread up to 3."""
    if hf_range:
        return rng.randint(*hf_range)
    band = rng.random()
    if band < 0.45:
        return rng.randint(HF_MIN_BPS, 13_000)
    if band < 0.75:
        return rng.randint(13_000, 18_000)
    return rng.randint(18_000, HF_MAX_BPS)


def plan_borrower(rng: random.Random, address: str, assets: list[AssetParams], shape: Shape = Shape()) -> BorrowerPlan:
    """Pure: choose the assets and integer amounts for one borrower."""
    plan = BorrowerPlan(address, _target_hf(rng, shape.hf_range))
    collaterals = [a for a in assets if a.liquidation_threshold > 0 and (not shape.collaterals or a.symbol in shape.collaterals)]
    n_coll = min(len(collaterals), rng.choices([1, 2, 3], weights=[60, 30, 10])[0])
    chosen = rng.sample(collaterals, n_coll)
    total_base = int(10 ** rng.uniform(3, 5.7)) * 10**8  # $1k .. $500k
    weights = [rng.randint(1, 10) for _ in chosen]
    coll_base = {a.symbol: total_base * w // sum(weights) for a, w in zip(chosen, weights, strict=True)}
    allowed = [a for a in assets if not shape.debts or a.symbol in shape.debts]
    others = [a for a in allowed if a.symbol not in coll_base] or allowed
    debts = rng.sample(others, min(len(others), rng.choices([1, 2], weights=[70, 30])[0]))
    by_symbol = {a.symbol: a for a in assets}

    weighted_lt = sum(b * by_symbol[s].liquidation_threshold for s, b in coll_base.items())
    weighted_ltv = sum(b * by_symbol[s].ltv for s, b in coll_base.items())
    debt_base = weighted_lt // plan.target_hf_bps
    dweights = [rng.randint(1, 10) for _ in debts]
    for a, w in zip(debts, dweights, strict=True):
        plan.debt[a.symbol] = a.amount(debt_base * w // sum(dweights))
    for s, b in coll_base.items():
        plan.collateral[s] = by_symbol[s].amount(b)

    capacity = weighted_ltv * BORROW_HEADROOM_BPS // BPS // BPS
    if debt_base > capacity:
        first = by_symbol[chosen[0].symbol]
        if first.ltv == 0:
            raise DevnetError(f"{first.symbol} has LTV 0; it cannot back the extra collateral")
        missing = (debt_base - capacity) * BPS * BPS // (first.ltv * BORROW_HEADROOM_BPS) + 1
        plan.extra = (first.symbol, first.amount(missing) + 1)
    return plan


def read_assets(rpc: Rpc, market: Market) -> list[AssetParams]:
    oracle, dp = market.contracts["AaveOracle"], market.contracts["AaveProtocolDataProvider"]
    reserves = list(market.reserves.values())
    calls = [("eth_call", [{"to": oracle, "data": aave.GET_ASSETS_PRICES.calldata([r.address for r in reserves])}, "latest"])]
    calls += [("eth_call", [{"to": dp, "data": aave.GET_RESERVE_CONFIGURATION_DATA.calldata(r.address)}, "latest"])
              for r in reserves]
    prices_raw, *configs = rpc.batch(calls)
    prices = aave.GET_ASSETS_PRICES.decode(prices_raw)
    out = []
    for r, price, raw in zip(reserves, prices, configs, strict=True):
        cfg = aave.GET_RESERVE_CONFIGURATION_DATA.decode(raw)
        out.append(AssetParams(r.symbol, r.address, r.decimals, price, cfg[1], cfg[2]))
    return out


@dataclass
class SeedResult:
    borrowers: list[BorrowerPlan]
    health_factors: dict[str, int]  # address -> HF in wad, read back from the Pool


def seed_borrowers(
    market: Market, n: int, seed: int = 1, chunk: int = 50, progress: Callable[[int], None] | None = None,
    shape: Shape = Shape(),
) -> SeedResult:
    if n <= 0:
        raise DevnetError("--borrowers must be at least 1")
    rpc = Rpc(market.rpc_url, timeout=120)
    try:
        return _seed(rpc, market, n, seed, chunk, progress or (lambda _: None), shape)
    finally:
        rpc.call("anvil_autoImpersonateAccount", False)
        rpc.close()


def _seed(rpc: Rpc, market: Market, n: int, seed: int, chunk: int, progress: Callable[[int], None],
          shape: Shape) -> SeedResult:
    rng = random.Random(seed)
    assets = read_assets(rpc, market)
    by_symbol = {a.symbol: a for a in assets}
    plans = [plan_borrower(rng, borrower_address(seed, i), assets, shape) for i in range(n)]
    funder = market.account("deployer").address
    pool = market.pool
    tx = TxSender(rpc)

    needed: dict[str, int] = {}
    for p in plans:
        for s, amt in [*p.collateral.items(), *([p.extra] if p.extra else [])]:
            needed[s] = needed.get(s, 0) + amt
    for s, amt in needed.items():
        tx.call(funder, by_symbol[s].address, aave.MINT_TO, funder, amt)
        tx.call(funder, by_symbol[s].address, aave.APPROVE, pool, aave.UINT256_MAX)
    tx.settle()
    rpc.call("anvil_autoImpersonateAccount", True)

    for start in range(0, n, chunk):
        part = plans[start : start + chunk]
        rpc.batch([("anvil_setBalance", [p.address, hex(10**20)]) for p in part])
        supplies = []
        for p in part:
            for s, amt in [*p.collateral.items(), *([p.extra] if p.extra else [])]:
                supplies.append(tx.queue(funder, pool, aave.SUPPLY, by_symbol[s].address, amt, p.address, 0, gas=SEED_GAS))
        tx.send_batch(supplies)
        tx.settle()
        borrows = []
        for p in part:
            for s, amt in p.debt.items():
                borrows.append(tx.queue(p.address, pool, aave.BORROW, by_symbol[s].address, amt, aave.VARIABLE_RATE, 0,
                                        p.address, gas=SEED_GAS, label=f"borrow {s} for {p.address}"))
            if p.extra:
                s, amt = p.extra
                borrows.append(tx.queue(p.address, pool, aave.WITHDRAW, by_symbol[s].address, amt, p.address,
                                        gas=SEED_GAS, label=f"withdraw extra {s} for {p.address}"))
        tx.send_batch(borrows)
        tx.settle()
        progress(len(part))

    hfs = {}
    for start in range(0, n, 500):
        part = plans[start : start + 500]
        raws = rpc.batch([("eth_call", [{"to": pool, "data": aave.GET_USER_ACCOUNT_DATA.calldata(p.address)}, "latest"])
                          for p in part])
        for p, raw in zip(part, raws, strict=True):
            hfs[p.address] = aave.GET_USER_ACCOUNT_DATA.decode(raw)[5]
    return SeedResult(plans, hfs)
