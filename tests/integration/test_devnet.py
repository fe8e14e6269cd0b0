"""The devnet against the real Aave v3 contracts on a real anvil."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.devnet import DEFAULT_RESERVES, Devnet, ReserveSpec, move_price, seed_borrowers
from liqbot.devnet.anvil import free_port, port_is_free
from liqbot.devnet.txs import TxSender
from liqbot.errors import DevnetError

pytestmark = pytest.mark.integration
WAD = 10**18


def call(rpc: Rpc, to: str, fn, *args):
    return fn.decode(rpc.eth_call(to, fn.calldata(*args)))


def send(rpc: Rpc, sender: str, to: str, fn, *args) -> dict:
    tx = TxSender(rpc)
    tx.call(sender, to, fn, *args)
    return tx.settle()[0]


def test_every_reserve_reads_back_as_configured(devnet: Devnet):
    m, rpc = devnet.market, devnet.rpc
    assert call(rpc, m.provider, aave.GET_POOL) == m.pool
    assert call(rpc, m.provider, aave.GET_PRICE_ORACLE) == m.contracts["AaveOracle"]
    dp = call(rpc, m.provider, aave.GET_POOL_DATA_PROVIDER)
    assert dp == m.contracts["AaveProtocolDataProvider"]
    listed = call(rpc, m.pool, aave.GET_RESERVES_LIST)
    assert len(listed) == len(DEFAULT_RESERVES) >= 4
    for spec in DEFAULT_RESERVES:
        reserve = m.reserve(spec.symbol)
        assert reserve.address in listed
        decimals, ltv, lt, bonus, factor, collateral, borrowing, stable, active, frozen = call(
            rpc, dp, aave.GET_RESERVE_CONFIGURATION_DATA, reserve.address)
        assert (decimals, ltv, lt, bonus, factor) == (spec.decimals, spec.ltv, spec.liquidation_threshold,
                                                      spec.liquidation_bonus, spec.reserve_factor)
        assert collateral
        assert borrowing
        assert active
        assert not frozen
        assert not stable
        assert call(rpc, dp, aave.GET_PAUSED, reserve.address) is False
        assert call(rpc, dp, aave.GET_LIQUIDATION_PROTOCOL_FEE, reserve.address) == spec.protocol_fee
        assert call(rpc, m.contracts["AaveOracle"], aave.GET_ASSET_PRICE, reserve.address) == spec.price
        assert call(rpc, m.contracts["AaveOracle"], aave.GET_SOURCE_OF_ASSET, reserve.address) == reserve.aggregator
        assert call(rpc, reserve.address, aave.DECIMALS) == spec.decimals
        assert call(rpc, dp, aave.GET_RESERVE_TOKENS_ADDRESSES, reserve.address) == (
            reserve.a_token, reserve.stable_debt_token, reserve.variable_debt_token)


def test_price_crash_makes_a_borrower_liquidatable_and_liquidation_call_works(chain: Devnet):
    m, rpc = chain.market, chain.rpc
    weth, usdc = m.reserve("WETH"), m.reserve("USDC")
    user = m.account("user4").address
    liquidator = m.account("liquidator").address
    send(rpc, user, weth.address, aave.MINT_TO, user, 10 * WAD)
    send(rpc, user, weth.address, aave.APPROVE, m.pool, aave.UINT256_MAX)
    send(rpc, user, m.pool, aave.SUPPLY, weth.address, 10 * WAD, user, 0)
    send(rpc, user, m.pool, aave.BORROW, usdc.address, 15_000 * 10**6, aave.VARIABLE_RATE, 0, user)  # 75% of $20k
    hf_before = call(rpc, m.pool, aave.GET_USER_ACCOUNT_DATA, user)[5]
    assert hf_before > WAD

    move = move_price(m, "WETH", pct=-10)  # HF 18,000 x 0.825 / 15,000 = 0.99
    assert move.new == 1800 * 10**8
    _collateral, debt, _, _, _, hf = call(rpc, m.pool, aave.GET_USER_ACCOUNT_DATA, user)
    assert 0.95 * WAD < hf < WAD
    assert debt > 0

    debt_before = call(rpc, usdc.variable_debt_token, aave.BALANCE_OF, user)
    send(rpc, liquidator, usdc.address, aave.APPROVE, m.pool, aave.UINT256_MAX)
    receipt = send(rpc, liquidator, m.pool, aave.LIQUIDATION_CALL, weth.address, usdc.address, user, aave.UINT256_MAX, False)
    events = [aave.LIQUIDATION_CALL_EVENT.decode(log) for log in receipt["logs"]
              if log["topics"][0] == aave.LIQUIDATION_CALL_EVENT.topic0]
    assert len(events) == 1
    ev = events[0]
    assert (ev["collateralAsset"], ev["debtAsset"]) == (weth.address, usdc.address)
    assert (ev["user"], ev["liquidator"]) == (user, liquidator)
    debt_after = call(rpc, usdc.variable_debt_token, aave.BALANCE_OF, user)
    assert debt_after < debt_before
    # HF was above 0.95, so the close factor allows half of the debt.
    assert ev["debtToCover"] == pytest.approx(debt_before // 2, rel=1e-6)


def test_seeding_50_borrowers_gives_the_spread_asked_for(chain: Devnet):
    result = seed_borrowers(chain.market, 50, seed=11)
    hfs = [result.health_factors[p.address] for p in result.borrowers]
    assert len(set(result.health_factors)) == 50
    assert all(1.0 * WAD < hf < 3.05 * WAD for hf in hfs)
    assert min(hfs) < 1.1 * WAD
    assert max(hfs) > 2.0 * WAD
    assert sum(1.1 * WAD <= hf < 2 * WAD for hf in hfs) >= 10
    for p in result.borrowers:  # each one lands within 0.5% of its target
        assert result.health_factors[p.address] == pytest.approx(p.target_hf_bps * 10**14, rel=5e-3)
    assert any(len(p.collateral) > 1 for p in result.borrowers)
    assert any(len(p.debt) > 1 for p in result.borrowers)
    assert any(len(p.collateral) == 1 and len(p.debt) == 1 for p in result.borrowers)


def test_moving_the_source_emits_asset_source_updated(chain: Devnet):
    m = chain.market
    move = move_price(m, "WBTC", usd="30000", swap_source=True)
    assert move.feed != m.reserve("WBTC").aggregator
    assert call(chain.rpc, m.contracts["AaveOracle"], aave.GET_ASSET_PRICE, m.reserve("WBTC").address) == 30_000 * 10**8
    logs = chain.rpc.call("eth_getLogs", {"fromBlock": hex(move.block), "toBlock": hex(move.block),
                                          "topics": [aave.ASSET_SOURCE_UPDATED_EVENT.topic0]})
    assert aave.ASSET_SOURCE_UPDATED_EVENT.decode(logs[0])["source"] == move.feed


def test_a_failed_deploy_names_the_step_and_leaves_no_process():
    bad = (ReserveSpec("BAD", 18, 10**8, 8000, 8500, 9000, 1000, 1000, True),)  # bonus below 100%
    port = free_port()
    with pytest.raises(DevnetError, match="configureReserveAsCollateral reverted"):
        Devnet.start(port=port, reserves=bad)
    assert port_is_free(port)


# --- the CLI, run as users run it ---------------------------------------------------------------

def liqbot(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "liqbot", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd, check=False)


def test_cli_up_seed_price_down(tmp_path: Path):
    env = {**os.environ, "LIQBOT_DEVNET_DIR": str(tmp_path / "state")}
    port = free_port()
    out = tmp_path / "market.json"
    up = subprocess.Popen([sys.executable, "-m", "liqbot", "devnet", "up", "--port", str(port), "--out", str(out)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "state" / "state.json").exists():
            assert up.poll() is None, up.stdout.read()
            assert time.monotonic() < deadline, "devnet up did not come up"
            time.sleep(0.05)
        market = json.loads(out.read_text())
        assert market["rpc_url"] == f"http://127.0.0.1:{port}"
        assert market["accounts"]["liquidator"]["private_key"].startswith("0x")

        again = liqbot("devnet", "up", "--port", str(free_port()), env=env)
        assert again.returncode != 0
        assert "already running" in again.stderr

        seeded = liqbot("devnet", "seed", "--borrowers", "5", "--seed", "2", env=env)
        assert seeded.returncode == 0, seeded.stderr
        assert "seeded 5 borrowers" in seeded.stdout

        moved = liqbot("devnet", "price", "weth", "--usd", "1850.5", env=env)
        assert moved.returncode == 0, moved.stderr
        assert "1,850.50" in moved.stdout

        for args, message in ((["FOO", "--pct", "-30"], "unknown asset 'FOO'"), (["WETH", "--usd", "0"], "above 0"),
                              (["WETH", "--pct", "-100"], "above 0"), (["WETH"], "exactly one")):
            bad = liqbot("devnet", "price", *args, env=env)
            assert bad.returncode == 1
            assert message in bad.stderr
            assert "Traceback" not in bad.stderr

        down = liqbot("devnet", "down", env=env)
        assert down.returncode == 0, down.stderr
        up.wait(10)
        assert port_is_free(port)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
        up.stdout.close()


def test_cli_refuses_a_port_in_use(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = liqbot("devnet", "up", "--port", str(port), env={"LIQBOT_DEVNET_DIR": str(tmp_path)})
    assert res.returncode == 1
    assert f"port {port} is already in use" in res.stderr
    assert not (tmp_path / "state.json").exists()


def test_cli_without_node_modules_says_what_to_do(tmp_path: Path):
    res = liqbot("devnet", "up", "--port", str(free_port()),
                 env={"LIQBOT_DEVNET_DIR": str(tmp_path), "LIQBOT_NODE_MODULES": str(tmp_path / "nowhere")})
    assert res.returncode == 1
    assert "make setup" in res.stderr
    assert "Traceback" not in res.stderr


def test_cli_seed_without_a_devnet_is_refused(tmp_path: Path):
    res = liqbot("devnet", "seed", "--borrowers", "3", env={"LIQBOT_DEVNET_DIR": str(tmp_path)})
    assert res.returncode == 1
    assert "no devnet is running" in res.stderr
    res = liqbot("devnet", "seed", "--borrowers", "0", env={"LIQBOT_DEVNET_DIR": str(tmp_path)})
    assert res.returncode == 2  # click's usage error
