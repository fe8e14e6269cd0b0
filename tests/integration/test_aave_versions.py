"""The same market on Aave v3.0 (core-v3) and v3.6 (aave-v3-origin): the revision picks the rules, and
the v3.3+ dust rule and its error are what the Pool really does."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from liqbot.chain import aave
from liqbot.chain.market import discover_market
from liqbot.devnet import Devnet, move_price
from liqbot.devnet.txs import TxSender
from liqbot.domain.close_factor import MIN_LEFTOVER_BASE, Rules, leaves_dust
from liqbot.domain.reverts import revert_code
from liqbot.errors import RpcError

pytestmark = pytest.mark.aave()
REVISION = {"3.0": 1, "3.6": 10}


def test_the_pool_revision_picks_the_rules(chain: Devnet, aave_version: str):
    market = discover_market(chain.rpc, chain.market.provider)
    assert chain.market.aave_version == aave_version
    assert market.revision == REVISION[aave_version]
    assert Rules.for_revision(market.revision) is (Rules.V33 if aave_version == "3.6" else Rules.V30)
    no_stable = market.reserves[0].stable_debt_token == "0x0000000000000000000000000000000000000000"
    assert no_stable is (aave_version == "3.6")


def _simulate(chain: Devnet, user: str, debt_to_cover: int) -> RpcError | None:
    m = chain.market
    data = aave.LIQUIDATION_CALL.calldata(m.reserve("WETH").address, m.reserve("USDC").address, user, debt_to_cover, False)
    try:
        chain.rpc.call("eth_call", {"from": m.account("liquidator").address, "to": m.pool, "data": data}, "latest")
    except RpcError as exc:
        return exc
    return None


def test_leaving_less_than_1000_usd_of_debt_reverts_with_the_dust_error_from_v33_on(chain: Devnet, aave_version: str):
    # 1.25 WETH against 1,875 USDC (debt under the 2,000 threshold), WETH to $1,763: HF 0.97.
    m = chain.market
    user = _position(chain)
    move_price(m, "WETH", usd="1763")
    tx = TxSender(chain.rpc)
    tx.call(m.account("liquidator").address, m.reserve("USDC").address, aave.APPROVE, m.pool, aave.UINT256_MAX)
    tx.settle()
    debt = aave.BALANCE_OF.decode(chain.rpc.eth_call(m.reserve("USDC").variable_debt_token, aave.BALANCE_OF.calldata(user)))
    hf = aave.GET_USER_ACCOUNT_DATA.decode(chain.rpc.eth_call(m.pool, aave.GET_USER_ACCOUNT_DATA.calldata(user)))[5]
    assert 0.95e18 < hf < 1e18

    rules = Rules.for_revision(REVISION[aave_version])
    leave_short = debt - (MIN_LEFTOVER_BASE // 100 - 1)  # leaves 999.999999 USDC
    leave_exact = debt - MIN_LEFTOVER_BASE // 100  # leaves 1,000 USDC
    common = {"debt_before": debt, "debt_price": 10**8, "debt_unit": 10**6, "collateral_before": 10**30,
              "collateral_taken": 0, "collateral_price": 1, "collateral_unit": 1}
    assert leaves_dust(rules, debt_repaid=leave_short, **common) is (rules is Rules.V33)
    assert not leaves_dust(rules, debt_repaid=leave_exact, **common)

    failed = _simulate(chain, user, leave_short)
    if rules is Rules.V33:
        assert failed is not None
        assert failed.data == "0xb629b0e4"
        assert revert_code(failed.data) == "MustNotLeaveDust"
    else:
        assert failed is None
    assert _simulate(chain, user, leave_exact) is None


def _position(chain: Devnet) -> str:
    m = chain.market
    user = m.account("user8").address
    weth = m.reserve("WETH").address
    tx = TxSender(chain.rpc)
    tx.call(user, weth, aave.MINT_TO, user, 125 * 10**16)
    tx.call(user, weth, aave.APPROVE, m.pool, aave.UINT256_MAX)
    tx.call(user, m.pool, aave.SUPPLY, weth, 125 * 10**16, user, 0)
    tx.call(user, m.pool, aave.BORROW, m.reserve("USDC").address, 1_875 * 10**6, aave.VARIABLE_RATE, 0, user)
    tx.settle()
    return user


def test_the_cli_refuses_an_aave_version_it_cannot_deploy(tmp_path):
    res = subprocess.run([sys.executable, "-m", "liqbot", "devnet", "up", "--aave", "3.3"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "LIQBOT_DEVNET_DIR": str(tmp_path)}, check=False)
    assert res.returncode == 2
    assert "'3.0', '3.6'" in res.stderr
    assert not (tmp_path / "state.json").exists()
