"""The devnet's Uniswap v3 and flash loans, on every Aave version the devnet deploys: pools where the
periphery looks for them, priced at the oracle after deploy and after every price move, a quoter that
matches real swaps, and flash loans on at 9 bps."""

from __future__ import annotations

import json
from itertools import combinations

import pytest
from eth_utils import keccak

from liqbot.chain import aave, liquidator
from liqbot.chain.rpc import Rpc
from liqbot.devnet import Devnet, Market, artifacts, dex, move_price
from liqbot.devnet.txs import TxSender
from liqbot.domain.uniswap import price_ratio_error, sort_tokens, sqrt_price_x96
from liqbot.errors import DevnetError

pytestmark = pytest.mark.aave()

FLASHLOAN_ENABLED_BIT = 63  # ReserveConfiguration, v3.0 and v3.6
TOLERANCE = 0.001  # 0.1%


def call(rpc: Rpc, to: str, fn, *args):
    return fn.decode(rpc.eth_call(to, fn.calldata(*args)))


def oracle_prices(rpc: Rpc, m: Market) -> dict[str, int]:
    reserves = list(m.reserves.values())
    prices = call(rpc, m.contracts["AaveOracle"], aave.GET_ASSETS_PRICES, [r.address for r in reserves])
    return {r.symbol: p for r, p in zip(reserves, prices, strict=True)}


def pool_errors(rpc: Rpc, m: Market) -> dict[str, float]:
    """Each pool's price against the oracle's ratio of its two assets, as a relative error."""
    prices = oracle_prices(rpc, m)
    out = {}
    for key, pool in m.pools.items():
        a, b = (m.reserve(s) for s in key.split("/"))
        t0, t1 = (a, b) if sort_tokens(a.address, b.address)[0] == a.address else (b, a)
        target = sqrt_price_x96(prices[t0.symbol], prices[t1.symbol], t0.decimals, t1.decimals)
        out[key] = price_ratio_error(call(rpc, pool, dex.SLOT0)[0], target)
    return out


def send(rpc: Rpc, sender: str, to: str, fn, *args, gas: int = 2_000_000) -> dict:
    tx = TxSender(rpc)
    tx.call(sender, to, fn, *args, gas=gas)
    return tx.settle()[0]


def test_the_pool_init_code_hash_is_the_periphery_s():
    """Router, quoter and position manager compute pool addresses with this hash; a different pool
    bytecode would send every swap to an empty address."""
    code = bytes.fromhex(artifacts.uniswap("UniswapV3Pool").bytecode)
    assert "0x" + keccak(code).hex() == dex.POOL_INIT_CODE_HASH


def test_a_pool_for_every_pair_at_its_create2_address(devnet: Devnet):
    m, rpc = devnet.market, devnet.rpc
    symbols = list(m.reserves)
    assert list(m.pools) == [f"{a}/{b}" for a, b in combinations(symbols, 2)]
    factory = m.contracts["UniswapV3Factory"]
    for key, pool in m.pools.items():
        a, b = (m.reserve(s).address for s in key.split("/"))
        assert call(rpc, factory, liquidator.GET_POOL, a, b, dex.FEE) == pool == dex.pool_address(factory, a, b)
        assert (call(rpc, pool, dex.TOKEN0), call(rpc, pool, dex.TOKEN1)) == sort_tokens(a, b)
        assert call(rpc, pool, liquidator.LIQUIDITY) > 0
    for name in dex.CONTRACTS:
        assert rpc.call("eth_getCode", m.contracts[name], "latest") not in ("0x", "0x0")


def test_pools_start_at_the_oracle_price_with_deep_liquidity(devnet: Devnet):
    m, rpc = devnet.market, devnet.rpc
    errors = pool_errors(rpc, m)
    assert all(abs(e) < TOLERANCE for e in errors.values()), errors
    # depth: what the pool holds of each side is near DEPTH_USD
    prices = oracle_prices(rpc, m)
    for key, pool in m.pools.items():
        for sym in key.split("/"):
            r = m.reserve(sym)
            held_usd = call(rpc, r.address, aave.BALANCE_OF, pool) * prices[sym] // 10**8 // 10**r.decimals
            assert dex.DEPTH_USD * 0.99 <= held_usd <= dex.DEPTH_USD, (key, sym, held_usd)


@pytest.mark.parametrize(("pct", "swap_source"), [(-8, False), (5, False), (-8, True)])
def test_a_price_move_moves_every_pool_with_the_asset(chain: Devnet, pct: int, swap_source: bool):
    m, rpc = chain.market, chain.rpc
    before = {k: call(rpc, p, dex.SLOT0)[0] for k, p in m.pools.items()}
    move = move_price(m, "WETH", pct=pct, swap_source=swap_source)
    assert move.new == 2000 * 10**8 * (100 + pct) // 100
    # the oracle change's own block: what a backrun watches for
    logs = rpc.call("eth_getLogs", {"fromBlock": hex(move.block), "toBlock": hex(move.block)})
    expected = aave.ASSET_SOURCE_UPDATED_EVENT if swap_source else aave.ANSWER_UPDATED_EVENT
    assert expected.topic0 in [lg["topics"][0] for lg in logs]
    errors = pool_errors(rpc, m)
    assert all(abs(e) < TOLERANCE for e in errors.values()), errors
    after = {k: call(rpc, p, dex.SLOT0)[0] for k, p in m.pools.items()}
    assert {k for k in m.pools if after[k] != before[k]} == {k for k in m.pools if "WETH" in k.split("/")}


def test_moves_compound_and_other_assets_follow_their_own_feed(chain: Devnet):
    m, rpc = chain.market, chain.rpc
    move_price(m, "WETH", pct=-8)
    move_price(m, "WBTC", pct=12)
    move_price(m, "WETH", usd="2500")
    errors = pool_errors(rpc, m)
    assert all(abs(e) < TOLERANCE for e in errors.values()), errors


def test_quoter_matches_a_real_swap_and_a_big_trade_moves_the_price_under_1pct(chain: Devnet):
    m, rpc = chain.market, chain.rpc
    weth, usdc = m.reserve("WETH"), m.reserve("USDC")
    trader = m.account("user5").address
    amount_in = 150 * 10**18  # USD 300k of WETH, a large liquidation's seized collateral
    quote = (weth.address, usdc.address, amount_in, dex.FEE, 0)
    amount_out, sqrt_after, _, _ = call(rpc, m.contracts["QuoterV2"], dex.QUOTE_EXACT_INPUT_SINGLE, quote)

    send(rpc, trader, weth.address, aave.MINT_TO, trader, amount_in)
    send(rpc, trader, weth.address, aave.APPROVE, m.contracts["SwapRouter"], aave.UINT256_MAX)
    before = call(rpc, usdc.address, aave.BALANCE_OF, trader)
    params = (weth.address, usdc.address, dex.FEE, trader, dex.DEADLINE, amount_in, 0, 0)
    send(rpc, trader, m.contracts["SwapRouter"], dex.EXACT_INPUT_SINGLE, params, gas=1_000_000)
    received = call(rpc, usdc.address, aave.BALANCE_OF, trader) - before

    assert received == amount_out
    assert call(rpc, m.pools["WETH/USDC"], dex.SLOT0)[0] == sqrt_after
    assert 297_000 * 10**6 < received < 299_100 * 10**6  # 0.3% fee, then under 0.7% of average price impact
    assert 0.002 < abs(pool_errors(rpc, m)["WETH/USDC"]) < 0.01  # moved, by well under 1%


def test_flash_loans_are_on_at_9_bps(chain: Devnet):
    m, rpc = chain.market, chain.rpc
    assert call(rpc, m.pool, aave.FLASHLOAN_PREMIUM_TOTAL) == 9
    assert call(rpc, m.pool, aave.FLASHLOAN_PREMIUM_TO_PROTOCOL) == 10_000  # all to the treasury, as v3.4+
    for r in m.reserves.values():
        assert call(rpc, m.pool, aave.GET_CONFIGURATION, r.address) >> FLASHLOAN_ENABLED_BIT & 1, r.symbol

    # core-v3's mock receiver mints itself the premium and approves the repayment; its ABI is v3.6's too
    me = m.account("deployer").address
    tx = TxSender(rpc)
    receiver = tx.deploy(me, artifacts.aave("MockFlashLoanSimpleReceiver"), m.provider)
    tx.settle()
    usdc = m.reserve("USDC")
    amount = 1_000_000 * 10**6
    receipt = send(rpc, me, m.pool, aave.FLASH_LOAN_SIMPLE, receiver, usdc.address, amount, b"", 0)
    success = keccak(text="ExecutedWithSuccess(address,uint256,uint256)")
    (log,) = [lg for lg in receipt["logs"] if lg["topics"][0] == "0x" + success.hex()]
    assert int(log["data"][2 + 64 * 2 :], 16) == amount * 9 // 10_000  # premium

    # a contract that is no receiver fails in the call back (no revert data), not on the check that a
    # disabled reserve fails: '91' on v3.0, FlashloanDisabled() on v3.6
    with pytest.raises(DevnetError) as exc:
        send(rpc, me, m.pool, aave.FLASH_LOAN_SIMPLE, m.contracts["AaveOracle"], usdc.address, amount, b"", 0)
    assert str(exc.value).endswith("execution reverted"), exc.value


def test_an_old_market_file_without_a_dex_still_loads_and_moves(chain: Devnet, tmp_path):
    m = chain.market
    path = tmp_path / "market.json"
    m.save(path)
    data = json.loads(path.read_text())
    del data["pools"]
    for name in dex.CONTRACTS:
        del data["contracts"][name]
    path.write_text(json.dumps(data))
    old = Market.load(path)
    assert old.pools == {}
    before = {k: call(chain.rpc, p, dex.SLOT0)[0] for k, p in m.pools.items()}
    move_price(old, "WETH", pct=-8)
    assert {k: call(chain.rpc, p, dex.SLOT0)[0] for k, p in m.pools.items()} == before
