"""The mirror against the Pool itself, on each Aave version's devnet.

~120 users (100 seeded borrowers over every reserve, e-mode users, v3.0 stable borrowers, a whale that
lifts the rates) go through price moves, time jumps of a month and a year, supplies, withdrawals,
borrows, repays, a collateral switch, an e-mode exit and liquidations. After each step the mirror is
bootstrapped at the latest block and every user's account data must EQUAL getUserAccountData at that
block, to the wei. Across each time jump, the mirror read before it must also predict the Pool after it.
"""

from __future__ import annotations

import random

import pytest

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.devnet import Devnet, move_price, seed_borrowers
from liqbot.devnet.seed import borrower_address
from liqbot.devnet.txs import TxSender
from liqbot.domain.health import AccountData
from liqbot.domain.units import WAD
from liqbot.errors import RpcError
from liqbot.mirror import Mirror, load_mirror

pytestmark = pytest.mark.aave("3.0", "3.6")

GAS = 2_000_000
EMODE = 1


def chain_accounts(rpc: Rpc, pool: str, users: list[str], block: int) -> list[AccountData]:
    raws = rpc.batch([("eth_call", [{"to": pool, "data": aave.GET_USER_ACCOUNT_DATA.calldata(u)}, hex(block)])
                      for u in users])
    return [AccountData(u, *aave.GET_USER_ACCOUNT_DATA.decode(raw)) for u, raw in zip(users, raws, strict=True)]


def assert_same(expected: list[AccountData], got: list[AccountData], step: str) -> None:
    diffs = [(e, g) for e, g in zip(expected, got, strict=True) if e != g]
    shown = "\n".join(f"  pool   {e}\n  mirror {g}" for e, g in diffs[:4])
    assert not diffs, f"{step}: {len(diffs)} of {len(expected)} users differ\n{shown}"


class Scenario:
    def __init__(self, dn: Devnet, version: str):
        self.dn, self.version = dn, version
        self.market, self.rpc = dn.market, dn.rpc
        self.pool = self.market.pool
        self.configurator = self.market.contracts["PoolConfigurator"]
        self.deployer = self.market.account("deployer").address
        self.tx = TxSender(self.rpc)
        self.users: list[str] = []
        self.checks = 0

    def begin(self) -> TxSender:
        """A sender with fresh nonces: move_price and seeding send from the same accounts behind our back."""
        self.tx = TxSender(self.rpc)
        return self.tx

    def reserve_id(self, symbol: str) -> int:
        return list(self.market.reserves).index(symbol)

    def token(self, symbol: str) -> str:
        return self.market.reserve(symbol).address

    def amount(self, symbol: str, usd: float) -> int:
        r = self.market.reserve(symbol)
        price = {"WETH": 2_000, "WBTC": 40_000}.get(r.symbol, 1)
        return int(usd * 10**r.decimals) // price

    def fund(self, user: str, symbol: str, amount: int) -> None:
        self.tx.call(self.deployer, self.token(symbol), aave.MINT_TO, user, amount)
        self.tx.call(user, self.token(symbol), aave.APPROVE, self.pool, aave.UINT256_MAX)

    def supply(self, user: str, symbol: str, amount: int) -> None:
        self.fund(user, symbol, amount)
        self.tx.call(user, self.pool, aave.SUPPLY, self.token(symbol), amount, user, 0, gas=GAS)

    def borrow(self, user: str, symbol: str, amount: int, mode: int = aave.VARIABLE_RATE) -> None:
        self.tx.call(user, self.pool, aave.BORROW, self.token(symbol), amount, mode, 0, user, gas=GAS,
                     label=f"borrow {symbol} for {user}")

    def check(self, step: str) -> Mirror:
        """Bootstrap at the latest block; every user equals the Pool at that block."""
        mirror = load_mirror(self.rpc, self.pool, self.users, chunk=97)  # an odd chunk: batches split mid-user
        assert_same(chain_accounts(self.rpc, self.pool, self.users, mirror.block), mirror.accounts(self.users), step)
        self.checks += 1
        return mirror

    def jump(self, seconds: int, before: Mirror, step: str) -> Mirror:
        """Move the clock with no transaction: the old mirror must predict the new block exactly."""
        self.dn.increase_time(seconds)
        head = self.rpc.call("eth_getBlockByNumber", "latest", False)
        block, timestamp = int(head["number"], 16), int(head["timestamp"], 16)
        assert timestamp >= before.timestamp + seconds
        assert_same(chain_accounts(self.rpc, self.pool, self.users, block), before.accounts(self.users, timestamp=timestamp),
                    f"{step} (predicted from block {before.block})")
        return self.check(step)

    # --- setup
    def emode_category(self) -> None:
        """Stablecoins in category 1. v3.0: USDC's price prices DAI too inside it (a price source);
        v3.6: collateral and borrowable bitmaps (and later ltvzero)."""
        self.begin()
        usdc, dai = self.token("USDC"), self.token("DAI")
        if self.version == "3.0":
            self.tx.call(self.deployer, self.configurator, aave.SET_EMODE_CATEGORY_V30, EMODE, 9300, 9500, 10100, usdc,
                         "stables")
            for asset in (usdc, dai):
                self.tx.call(self.deployer, self.configurator, aave.SET_ASSET_EMODE_CATEGORY, asset, EMODE)
        else:
            self.tx.call(self.deployer, self.configurator, aave.SET_EMODE_CATEGORY, EMODE, 9300, 9500, 10100, "stables")
            for asset in (usdc, dai):
                self.tx.call(self.deployer, self.configurator, aave.SET_ASSET_COLLATERAL_IN_EMODE, asset, EMODE, True)
                self.tx.call(self.deployer, self.configurator, aave.SET_ASSET_BORROWABLE_IN_EMODE, asset, EMODE, True)
        self.tx.settle()

    def ltvzero(self) -> None:
        """v3.6: DAI's LTV is 0 inside the category, set once users are in (entering needs LTV > 0)."""
        self.begin()
        self.tx.call(self.deployer, self.configurator, aave.SET_ASSET_LTVZERO_IN_EMODE, self.token("DAI"), EMODE, True)
        self.tx.settle()

    def emode_users(self, n: int) -> list[str]:
        self.begin()
        users = [borrower_address(9_001, i) for i in range(n)]
        self.rpc.batch([("anvil_setBalance", [u, hex(10**20)]) for u in users])
        for i, u in enumerate(users):
            self.supply(u, "USDC", self.amount("USDC", 50_000 + 5_000 * i))
            self.supply(u, "DAI", self.amount("DAI", 30_000))
            if i % 2:
                self.supply(u, "WETH", self.amount("WETH", 10_000))  # collateral outside the category
            self.tx.call(u, self.pool, aave.SET_USER_EMODE, EMODE, gas=GAS)
            self.borrow(u, "DAI" if i % 3 else "USDC", self.amount("USDC", 40_000 + 1_000 * i))
        self.tx.settle()
        return users

    def stable_users(self, n: int) -> list[str]:
        """v3.0 only: stable-rate WETH and USDC debt, some users with variable debt in the same reserve."""
        self.begin()
        for symbol in ("WETH", "USDC"):
            self.tx.call(self.deployer, self.configurator, aave.SET_RESERVE_STABLE_RATE_BORROWING, self.token(symbol), True)
        users = [borrower_address(9_002, i) for i in range(n)]
        self.rpc.batch([("anvil_setBalance", [u, hex(10**20)]) for u in users])
        for i, u in enumerate(users):
            self.supply(u, "WBTC", self.amount("WBTC", 100_000))
            self.borrow(u, "WETH", self.amount("WETH", 20_000 + 3_000 * i), aave.STABLE_RATE)
            if i % 2:
                self.borrow(u, "WETH", self.amount("WETH", 10_000))
                self.borrow(u, "USDC", self.amount("USDC", 15_000), aave.STABLE_RATE)
        self.tx.settle()
        return users

    def whale(self) -> str:
        """The liquidity account borrows a large share of WETH and USDC: rates of a few % make a year count."""
        self.begin()
        whale = self.market.account("liquidity").address
        self.borrow(whale, "WETH", self.amount("WETH", 400_000_000))
        self.borrow(whale, "USDC", self.amount("USDC", 700_000_000))
        self.tx.settle()
        return whale

    # --- steps
    def actions(self, mirror: Mirror, rng: random.Random) -> None:
        """Supplies, withdrawals, borrows, repays and a collateral switch by users the mirror finds safe
        (e-mode users keep their collateral: v3.6's ltvzero DAI would block withdrawing the rest)."""
        self.begin()
        symbols = {r.address: r.symbol for r in self.market.reserves.values()}
        accounts = {a.user: a for a in mirror.accounts(self.users)}
        safe = [u for u in self.users if accounts[u].debt_base and accounts[u].health_factor > 13 * WAD // 10]
        rng.shuffle(safe)
        plain = [u for u in safe if mirror.users[u].emode == 0]

        def collaterals(u: str) -> list[tuple[int, int]]:  # (value in base, reserve id)
            st = mirror.users[u]
            return sorted((s * mirror.market.prices[rid] // 10 ** self.market.reserve(symbols[mirror.assets[rid]]).decimals, rid)
                          for rid, s in zip(st.reserve_ids, st.scaled_collateral, strict=True) if s and st.config >> 2 * rid & 2)

        switch = [u for u in plain if len(collaterals(u)) > 1
                  and accounts[u].health_factor * (1 - collaterals(u)[0][0] / accounts[u].collateral_base) > 1.2 * WAD][:4]
        plain = [u for u in plain if u not in switch]
        for u in safe[:8]:
            symbol = rng.choice(["WETH", "WBTC", "USDC", "DAI"])
            self.supply(u, symbol, self.amount(symbol, rng.randint(500, 20_000)))
        for u in switch:
            self.tx.call(u, self.pool, aave.SET_USER_USE_RESERVE_AS_COLLATERAL, mirror.assets[collaterals(u)[0][1]], False,
                         gas=GAS)
        for u in plain[:6]:
            _, rid = rng.choice(collaterals(u))
            scaled = mirror.users[u].scaled_collateral[mirror.users[u].reserve_ids.index(rid)]
            self.tx.call(u, self.pool, aave.WITHDRAW, mirror.assets[rid], scaled * 3 // 100, u, gas=GAS)
        for u in safe[8:14]:
            st, acc = mirror.users[u], accounts[u]
            rid = next(rid for rid in st.reserve_ids if st.config >> 2 * rid & 1)
            symbol = symbols[mirror.assets[rid]]
            unit = 10 ** self.market.reserve(symbol).decimals
            self.borrow(u, symbol, acc.available_borrows_base * unit // mirror.market.prices[rid] // 4 + 1)
        for u in [u for u in safe[14:] if any(mirror.users[u].scaled_debt)][:8]:
            st = mirror.users[u]
            rid, scaled = next((rid, s) for rid, s in zip(st.reserve_ids, st.scaled_debt, strict=True) if s)
            self.fund(u, symbols[mirror.assets[rid]], scaled)
            self.tx.call(u, self.pool, aave.REPAY, mirror.assets[rid], scaled // 2, aave.VARIABLE_RATE, u, gas=GAS)
        self.tx.settle()

    def liquidate(self, mirror: Mirror, most: int) -> int:
        """Liquidate up to `most` users the mirror finds below HF 1; each call is simulated first and only
        those the Pool accepts are sent (v3.3+ refuses some partial ones: dust)."""
        liquidator = self.market.account("liquidator").address
        self.begin()
        for r in self.market.reserves.values():
            self.tx.call(liquidator, r.address, aave.APPROVE, self.pool, aave.UINT256_MAX)
        self.tx.settle()
        done = 0
        for acc in mirror.accounts(self.users):
            if done >= most or not acc.liquidatable:
                continue
            st = mirror.users[acc.user]
            coll = max((s, rid) for rid, s in zip(st.reserve_ids, st.scaled_collateral, strict=True) if st.config >> 2 * rid & 2)
            debt = max((s, rid) for rid, s in zip(st.reserve_ids, st.scaled_debt, strict=True) if st.config >> 2 * rid & 1)
            call = aave.LIQUIDATION_CALL.calldata(mirror.assets[coll[1]], mirror.assets[debt[1]], acc.user, aave.UINT256_MAX,
                                                  False)
            try:
                self.rpc.call("eth_call", {"from": liquidator, "to": self.pool, "data": call, "gas": hex(GAS)}, "latest")
            except RpcError:
                continue
            self.tx.call(liquidator, self.pool, aave.LIQUIDATION_CALL, mirror.assets[coll[1]], mirror.assets[debt[1]], acc.user,
                         aave.UINT256_MAX, False, gas=GAS)
            self.tx.settle()
            done += 1
        return done


def test_mirror_equals_get_user_account_data(chain: Devnet, aave_version: str):
    s = Scenario(chain, aave_version)
    rng = random.Random(13)
    chain.rpc.call("anvil_autoImpersonateAccount", True)
    try:
        seeded = seed_borrowers(chain.market, 100, seed=13)
        chain.rpc.call("anvil_autoImpersonateAccount", True)  # seeding turns it off when done
        s.emode_category()
        s.users = [p.address for p in seeded.borrowers] + s.emode_users(6)
        if aave_version == "3.0":
            s.users += s.stable_users(6)
        else:
            s.ltvzero()
        s.users += [s.whale(), s.market.account("liquidator").address, borrower_address(9_003, 0)]  # the last: no position
        mirror = s.check("seeded")
        assert mirror.revision == {"3.0": 1, "3.6": 10}[aave_version]
        in_emode = [u for u, st in mirror.users.items() if st.emode == EMODE]
        assert len(in_emode) == 6
        if aave_version == "3.0":
            assert sum(1 for st in mirror.users.values() if st.stable) == 6
            assert mirror.market.emode_prices[EMODE] == 10**8  # USDC's price, for DAI too
        else:
            assert mirror.market.emodes[EMODE].ltvzero_bitmap == 1 << s.reserve_id("DAI")

        for symbol, pct in (("WETH", -8), ("WBTC", 5), ("DAI", -2), ("USDC", 1)):
            move_price(chain.market, symbol, pct=pct)
        mirror = s.check("prices moved")
        mirror = s.jump(30 * 24 * 3600, mirror, "a month later")

        s.actions(mirror, rng)
        mirror = s.check("supplies, withdrawals, borrows, repays, a collateral switch")
        s.begin()
        if aave_version == "3.0":
            stable_user = next(u for u, st in mirror.users.items() if st.stable)
            s.fund(stable_user, "WETH", s.amount("WETH", 10_000))
            s.tx.call(stable_user, s.pool, aave.REPAY, s.token("WETH"), s.amount("WETH", 5_000), aave.STABLE_RATE, stable_user,
                      gas=GAS)
        s.tx.call(in_emode[0], s.pool, aave.SET_USER_EMODE, 0, gas=GAS)
        s.tx.settle()
        mirror = s.check("stable repay, e-mode exit")

        move_price(chain.market, "WETH", pct=-30)
        move_price(chain.market, "DAI", pct=-4)
        mirror = s.check("crash")
        below = sum(1 for a in mirror.accounts(s.users) if a.liquidatable)
        assert below >= 5, f"only {below} liquidatable users after the crash"
        assert s.liquidate(mirror, most=6) >= 3
        mirror = s.check("liquidations")

        whale = s.users[-3]
        before = mirror.account(whale).debt_base
        mirror = s.jump(365 * 24 * 3600, mirror, "a year later")
        assert any(a.liquidatable for a in mirror.accounts(s.users))
        assert mirror.account(whale).debt_base > before * 101 // 100  # a year of interest at a few %
        assert s.checks == 8
    finally:
        chain.rpc.call("anvil_autoImpersonateAccount", False)


def test_a_pool_of_an_unknown_revision_is_refused(chain: Devnet):
    """A contract without POOL_REVISION (here the oracle standing in for a Pool) is reported, not computed."""
    from liqbot.domain.account import UnsupportedRevision

    with pytest.raises(UnsupportedRevision, match="POOL_REVISION"):
        load_mirror(chain.rpc, chain.market.contracts["AaveOracle"], [])


def test_the_mirror_reads_one_block_only(chain: Devnet):
    """A mirror pinned to an older block answers for that block, whatever happened since."""
    seeded = seed_borrowers(chain.market, 10, seed=21)
    users = [p.address for p in seeded.borrowers]
    block = int(chain.rpc.call("eth_blockNumber"), 16)
    move_price(chain.market, "WETH", pct=-20)
    move_price(chain.market, "WBTC", pct=-20)
    chain.increase_time(7 * 24 * 3600)
    old = load_mirror(chain.rpc, chain.market.pool, users, block=block)
    assert old.block == block
    assert_same(chain_accounts(chain.rpc, chain.market.pool, users, block), old.accounts(), "pinned")
    assert old.accounts() != load_mirror(chain.rpc, chain.market.pool, users).accounts()
