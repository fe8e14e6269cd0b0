"""FlashLiquidator on every Aave version the devnet deploys: who may call it, the start-up check that
refuses anything else, and capital-free liquidations through the devnet's Uniswap v3 (the liquidator
account holds no tokens at all; the owner receives exactly the profit eth_call showed beforehand)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liqbot.chain import aave, liquidator
from liqbot.chain.abi import Function
from liqbot.chain.liquidator import check_liquidator, encode_path, find_path, liquidate_calldata
from liqbot.config import load_settings
from liqbot.devnet import artifacts, dex, move_price
from liqbot.devnet.txs import TxSender
from liqbot.domain.uniswap import sort_tokens, sqrt_price_x96
from liqbot.errors import ConfigError, RpcError
from tests.helpers import deploy_flash_liquidator as deploy
from tests.helpers import give_away_inventory, liquidations, open_position, runtime_with

pytestmark = pytest.mark.aave()

NOT_OWNER, NOT_POOL, NOT_INITIATOR, BAD_PATH = (Function(f"{e}()").selector for e in
                                                ("NotOwner", "NotPool", "NotInitiator", "BadPath"))
PROFIT_TOO_LOW = Function("ProfitTooLow(uint256,uint256)").selector
FLASH_GAS = 1_500_000
THIN_FEE, THIN_TICK = 500, 887270  # a second WETH/USDC pool, 0.05% (tick spacing 10), full range


def call(rpc, to: str, fn: Function, *args):
    return fn.decode(rpc.eth_call(to, fn.calldata(*args)))


def revert_data(rpc, sender: str, to: str, data: str) -> bytes:
    """The raw revert data of an eth_call that must fail."""
    with pytest.raises(RpcError) as err:
        rpc.call("eth_call", {"from": sender, "to": to, "data": data}, "latest")
    raw = err.value.data
    return bytes.fromhex(raw[2:]) if isinstance(raw, str) else b""


@pytest.fixture
def flash(chain) -> str:
    return deploy(chain)


def test_deploys_bound_to_the_market_pool_router_and_owner(chain, flash):
    m, rpc = chain.market, chain.rpc
    assert call(rpc, flash, liquidator.POOL) == m.pool
    assert call(rpc, flash, liquidator.ADDRESSES_PROVIDER) == m.provider
    assert call(rpc, flash, liquidator.ROUTER) == m.contracts["SwapRouter"]
    assert call(rpc, flash, liquidator.OWNER) == m.account("liquidator").address
    assert call(rpc, flash, liquidator.LIQBOT_LIQUIDATOR) == liquidator.VERSION
    code = rpc.call("eth_getCode", flash, "latest")
    assert len(code) // 2 - 1 == artifacts.ours("FlashLiquidator").deployed_size < 24_576
    assert check_liquidator(rpc, flash, m.pool, m.account("liquidator").address) == liquidator.VERSION


def test_only_the_owner_may_liquidate_or_sweep(chain, flash):
    m, rpc = chain.market, chain.rpc
    weth, usdc, stranger = m.reserve("WETH").address, m.reserve("USDC").address, m.account("user5").address
    data = liquidate_calldata(weth, usdc, m.account("user4").address, 10**6, encode_path([weth, usdc], [3000]), 0)
    assert revert_data(rpc, stranger, flash, data) == NOT_OWNER
    assert revert_data(rpc, stranger, flash, liquidator.SWEEP.calldata(usdc, stranger)) == NOT_OWNER


def test_execute_operation_answers_only_the_pool_for_its_own_loans(chain, flash):
    """Anyone may call a receiver; a flash loan someone else started must not drive our liquidations."""
    m, rpc = chain.market, chain.rpc
    usdc = m.reserve("USDC").address
    ours = liquidator.EXECUTE_OPERATION.calldata(usdc, 10**6, 0, flash, bytes(96))
    theirs = liquidator.EXECUTE_OPERATION.calldata(usdc, 10**6, 0, m.account("user5").address, bytes(96))
    assert revert_data(rpc, m.account("liquidator").address, flash, ours) == NOT_POOL
    assert revert_data(rpc, m.pool, flash, theirs) == NOT_INITIATOR


def test_liquidate_refuses_a_path_that_does_not_sell_collateral_for_debt(chain, flash):
    m, rpc = chain.market, chain.rpc
    weth, usdc, dai = (m.reserve(s).address for s in ("WETH", "USDC", "DAI"))
    owner, user = m.account("liquidator").address, m.account("user4").address
    for path in (encode_path([weth, dai], [3000]), encode_path([usdc, weth], [3000]), b"", bytes.fromhex(weth[2:])):
        assert revert_data(rpc, owner, flash, liquidate_calldata(weth, usdc, user, 10**6, path, 0)) == BAD_PATH
    assert revert_data(rpc, owner, flash, liquidate_calldata(usdc, usdc, user, 10**6, encode_path([usdc, dai], [100]), 0)) \
        == BAD_PATH


def test_sweep_returns_stuck_tokens_to_whom_the_owner_says(chain, flash):
    m, rpc = chain.market, chain.rpc
    dai, owner, to = m.reserve("DAI").address, m.account("liquidator").address, m.account("treasury").address
    tx = TxSender(rpc)
    tx.call(owner, dai, aave.MINT_TO, flash, 123 * 10**18)
    tx.settle()
    before = call(rpc, dai, aave.BALANCE_OF, to)
    tx.call(owner, flash, liquidator.SWEEP, dai, to)
    tx.settle()
    assert call(rpc, dai, aave.BALANCE_OF, flash) == 0
    assert call(rpc, dai, aave.BALANCE_OF, to) - before == 123 * 10**18


def test_check_liquidator_names_what_is_wrong(chain, flash):
    m, rpc = chain.market, chain.rpc
    owner = m.account("liquidator").address
    with pytest.raises(ConfigError, match="LIQUIDATOR_CONTRACT: no contract at"):
        check_liquidator(rpc, m.account("user4").address, m.pool, owner)
    with pytest.raises(ConfigError, match=f"LIQUIDATOR_CONTRACT: {m.pool} is a contract but not liqbot's FlashLiquidator"):
        check_liquidator(rpc, m.pool, m.pool, owner)
    with pytest.raises(ConfigError, match=f"owned by {m.account('user5').address}; expected the liquidator account {owner}"):
        check_liquidator(rpc, deploy(chain, "user5"), m.pool, owner)
    with pytest.raises(ConfigError, match=f"liquidates on Pool {m.pool}; expected this market's Pool"):
        check_liquidator(rpc, flash, m.contracts["PoolImpl"], owner)


def test_runtime_checks_liquidator_contract_at_start_up(chain, flash, env, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="liqbot.runtime")
    rt = runtime_with(monkeypatch)
    rt.check_chain()
    assert rt.liquidator_contract is None
    assert "no LIQUIDATOR_CONTRACT: liquidations are paid from inventory only" in caplog.text

    rt = runtime_with(monkeypatch, LIQUIDATOR_CONTRACT=flash.lower())
    rt.check_chain()
    assert rt.liquidator_contract == flash

    rt = runtime_with(monkeypatch, LIQUIDATOR_CONTRACT=chain.market.pool)
    with pytest.raises(ConfigError, match="not liqbot's FlashLiquidator"):
        rt.check_chain()


def test_a_worker_with_a_wrong_liquidator_contract_does_not_start(chain, env):
    """Checked in the worker's main process before its pool forks; it never reaches the broker."""
    worker = [sys.executable, "-m", "celery", "-A", "liqbot", "worker", "-Q", "priority", "-c", "1"]
    bad = subprocess.run(worker, capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "LIQUIDATOR_CONTRACT": chain.market.account("user4").address})
    assert bad.returncode == 2, bad.stderr
    assert f"LIQUIDATOR_CONTRACT: no contract at {chain.market.account('user4').address}" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_contract_deploy_writes_the_market_file_the_settings_read(chain, market_file: Path, tmp_path: Path, monkeypatch):
    from liqbot.cli import app
    from liqbot.config import get_settings

    monkeypatch.delenv("MARKET_FILE", raising=False)  # `--market` sets it for the process; undone after the test
    monkeypatch.delenv("LIQUIDATOR_CONTRACT", raising=False)
    mine = tmp_path / "market.json"
    mine.write_text(market_file.read_text())
    result = CliRunner().invoke(app, ["contract", "deploy", "--market", str(mine)])
    assert result.exit_code == 0, result.output
    address = json.loads(mine.read_text())["contracts"]["FlashLiquidator"]
    assert address in result.output
    assert "bytes of code" in result.output
    assert load_settings(market_file=mine).liquidator_contract == address
    check_liquidator(chain.rpc, address, chain.market.pool, chain.market.account("liquidator").address)

    without_dex = json.loads(market_file.read_text())
    del without_dex["contracts"]["SwapRouter"]
    mine.write_text(json.dumps(without_dex))
    result = CliRunner().invoke(app, ["contract", "deploy", "--market", str(mine)])
    assert isinstance(result.exception, ConfigError)
    assert "pass --router ADDRESS" in str(result.exception)

    # Without a market file: settings from the environment, the router given, the export line printed.
    m = chain.market
    monkeypatch.delenv("MARKET_FILE")
    for k, v in {"RPC_URL": m.rpc_url, "WS_URL": m.ws_url, "POOL_ADDRESSES_PROVIDER": m.provider,
                 "LIQUIDATOR_PRIVATE_KEY": m.account("liquidator").private_key}.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["contract", "deploy", "--router", m.contracts["SwapRouter"]])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "export LIQUIDATOR_CONTRACT=0x" in result.output


# --- flash liquidations through the devnet's Uniswap v3 -------------------------------------------------------


def underwater(chain) -> tuple[str, int]:
    """user4: 10 WETH against 15,000 USDC, then WETH -10% (HF 0.99); returns (user, USDC debt)."""
    m = chain.market
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    move_price(m, "WETH", pct=-10)
    debt = call(chain.rpc, m.reserve("USDC").variable_debt_token, aave.BALANCE_OF, user)
    return user, debt


@pytest.mark.parametrize("route", ["direct", "via DAI"])
def test_a_liquidator_holding_nothing_liquidates_and_earns_what_eth_call_showed(chain, flash, route):
    m, rpc = chain.market, chain.rpc
    owner = m.account("liquidator").address
    weth, usdc, dai = (m.reserve(s).address for s in ("WETH", "USDC", "DAI"))
    user, debt = underwater(chain)
    give_away_inventory(chain, owner)
    path = (find_path(rpc, call(rpc, m.contracts["SwapRouter"], liquidator.FACTORY), weth, usdc, [dai]) if route == "direct"
            else encode_path([weth, dai, usdc], [3000, 3000]))
    assert path == (encode_path([weth, usdc], [dex.FEE]) if route == "direct" else path)
    # The whole debt is asked for: the close factor lets the Pool take half, the rest repays the loan.
    data = liquidate_calldata(weth, usdc, user, debt, path, 0)
    simulated = liquidator.LIQUIDATE.decode(rpc.call("eth_call", {"from": owner, "to": flash, "data": data}, "latest"))
    assert simulated > 0
    start = int(rpc.call("eth_blockNumber"), 16) + 1

    tx = TxSender(rpc)
    tx.call(owner, flash, liquidator.LIQUIDATE, weth, usdc, user, debt, path, 0, gas=FLASH_GAS)
    receipt = tx.settle()[0]

    assert call(rpc, usdc, aave.BALANCE_OF, owner) == simulated
    (event,) = liquidations(rpc, m.pool, start)
    assert (event["liquidator"], event["user"]) == (flash, user)
    assert 0 < event["debtToCover"] < debt
    for token in (weth, usdc, dai):  # nothing held, nothing approved
        assert call(rpc, token, aave.BALANCE_OF, flash) == 0
        for spender in (m.pool, m.contracts["SwapRouter"]):
            assert call(rpc, token, aave.ALLOWANCE, flash, spender) == 0
    gas = int(receipt["gasUsed"], 16)
    assert gas < 800_000  # one hop ~480-550k, two ~580-630k: what the executor's gas limit must cover
    print(f"aave {m.aave_version} {route}: gas {gas:,}, profit simulated {simulated} = received "
        f"{call(rpc, usdc, aave.BALANCE_OF, owner)} (USDC units), repaid {event['debtToCover']} of {debt}")


def test_a_min_profit_above_the_simulated_profit_reverts(chain, flash):
    m, rpc = chain.market, chain.rpc
    owner = m.account("liquidator").address
    weth, usdc = m.reserve("WETH").address, m.reserve("USDC").address
    user, debt = underwater(chain)
    path = encode_path([weth, usdc], [dex.FEE])
    profit = liquidator.LIQUIDATE.decode(rpc.call(
        "eth_call", {"from": owner, "to": flash, "data": liquidate_calldata(weth, usdc, user, debt, path, 0)}, "latest"))
    data = liquidate_calldata(weth, usdc, user, debt, path, profit + 1)
    assert revert_data(rpc, owner, flash, data) == PROFIT_TOO_LOW + profit.to_bytes(32, "big") + (profit + 1).to_bytes(32, "big")
    data = liquidate_calldata(weth, usdc, user, debt, path, profit)
    assert liquidator.LIQUIDATE.decode(rpc.call("eth_call", {"from": owner, "to": flash, "data": data}, "latest")) == profit


def test_a_swap_that_cannot_repay_the_loan_reverts(chain, flash):
    """A path through a nearly empty pool (a second WETH/USDC pool at 0.05%, USD 1,000 a side) brings back
    far less than the loan: the router's amountOutMinimum stops it, and nothing is lost but the call."""
    m, rpc = chain.market, chain.rpc
    owner, lp = m.account("liquidator").address, m.account("liquidity").address
    weth, usdc = m.reserve("WETH"), m.reserve("USDC")
    user, debt = underwater(chain)
    prices = dict(zip(("WETH", "USDC"), call(rpc, m.contracts["AaveOracle"], aave.GET_ASSETS_PRICES,
                                                 [weth.address, usdc.address]), strict=True))
    t0, t1 = sorted((weth, usdc), key=lambda r: int(r.address, 16))
    assert sort_tokens(weth.address, usdc.address)[0] == t0.address
    side = {r.symbol: 1_000 * 10**8 * 10**r.decimals // prices[r.symbol] for r in (weth, usdc)}
    manager = m.contracts["NonfungiblePositionManager"]
    tx = TxSender(rpc)
    tx.call(lp, manager, dex.CREATE_AND_INITIALIZE_POOL, t0.address, t1.address, THIN_FEE,
            sqrt_price_x96(prices[t0.symbol], prices[t1.symbol], t0.decimals, t1.decimals), gas=dex.POOL_CREATE_GAS)
    for r in (weth, usdc):
        tx.call(lp, r.address, aave.MINT_TO, lp, side[r.symbol])
    tx.call(lp, manager, dex.MINT_POSITION, (t0.address, t1.address, THIN_FEE, -THIN_TICK, THIN_TICK, side[t0.symbol],
                                              side[t1.symbol], 0, 0, lp, dex.DEADLINE), gas=dex.MINT_POSITION_GAS)
    tx.settle()

    thin = encode_path([weth.address, usdc.address], [THIN_FEE])
    reason = revert_data(rpc, owner, flash, liquidate_calldata(weth.address, usdc.address, user, debt, thin, 0))
    assert b"Too little received" in reason
    # The deep pool still works for the same liquidation.
    deep = liquidate_calldata(weth.address, usdc.address, user, debt, encode_path([weth.address, usdc.address], [dex.FEE]), 0)
    assert liquidator.LIQUIDATE.decode(rpc.call("eth_call", {"from": owner, "to": flash, "data": deep}, "latest")) > 0


def test_find_path_prefers_a_direct_pool_then_a_hub(chain):
    m, rpc = chain.market, chain.rpc
    factory = call(rpc, m.contracts["SwapRouter"], liquidator.FACTORY)
    assert factory == m.contracts["UniswapV3Factory"]
    weth, wbtc, usdc = (m.reserve(s).address for s in ("WETH", "WBTC", "USDC"))
    assert find_path(rpc, factory, wbtc, usdc, [weth]) == encode_path([wbtc, usdc], [dex.FEE])
    assert find_path(rpc, factory, usdc, usdc, [weth]) == b""
    # A token pooled only with WETH is reached through the hub, and not at all without one.
    token = TxSender(rpc)
    lonely = token.deploy(m.account("deployer").address, artifacts.aave("MintableERC20"), "LONE", "LONE", 18)
    token.settle()
    t0, t1 = sort_tokens(lonely, weth)
    lp, manager = m.account("liquidity").address, m.contracts["NonfungiblePositionManager"]
    token.call(lp, manager, dex.CREATE_AND_INITIALIZE_POOL, t0, t1, dex.FEE, 2**96, gas=dex.POOL_CREATE_GAS)
    for t in (lonely, weth):
        token.call(lp, t, aave.MINT_TO, lp, 10**21)
        token.call(lp, t, aave.APPROVE, manager, aave.UINT256_MAX)
    token.call(lp, manager, dex.MINT_POSITION, (t0, t1, dex.FEE, dex.TICK_LOWER, dex.TICK_UPPER, 10**21, 10**21, 0, 0, lp,
                                                 dex.DEADLINE), gas=dex.MINT_POSITION_GAS)
    token.settle()
    assert find_path(rpc, factory, lonely, usdc, [weth]) == encode_path([lonely, weth, usdc], [dex.FEE, dex.FEE])
    assert find_path(rpc, factory, lonely, usdc, []) is None
