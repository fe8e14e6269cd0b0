"""The executor pays for each liquidation the more profitable way it can: from inventory, or by flash loan
through our contract. Both options are simulated in one batch (the flash call's result is its quote);
with no tokens at all everything goes by flash loan, and the owner receives what the simulation said."""

from __future__ import annotations

import pytest

from liqbot.chain import aave
from liqbot.devnet import Devnet, move_price
from liqbot.execution import run_and_record
from liqbot.store.attempts import attempts_for
from tests.helpers import (
    attempt_record,
    deploy_flash_liquidator,
    give_away_inventory,
    liquidations,
    open_position,
    runtime_with,
    wait_until,
)

pytestmark = pytest.mark.aave()


def _balance(chain: Devnet, symbol: str, who: str) -> int:
    token = chain.market.reserve(symbol).address
    return aave.BALANCE_OF.decode(chain.rpc.eth_call(token, aave.BALANCE_OF.calldata(who)))


def _mined(chain: Devnet, block: int, n: int) -> list[dict]:
    return wait_until(lambda: (ev := liquidations(chain.rpc, chain.market.pool, block)) and len(ev) >= n and ev, 10,
                      f"{n} liquidations mined")


@pytest.fixture
def flash_rt(chain: Devnet, env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    address = deploy_flash_liquidator(chain)
    rt = runtime_with(monkeypatch, LIQUIDATOR_CONTRACT=address)
    assert rt.liquidator_contract == address
    return rt


def test_a_liquidator_holding_no_tokens_liquidates_by_flash_loan_for_the_simulated_profit(chain: Devnet, flash_rt):
    rt, m = flash_rt, chain.market
    owner = m.account("liquidator").address
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    block = move_price(m, "WETH", pct=-12).block
    give_away_inventory(chain, owner)
    result = run_and_record(rt, attempt_record(user, block), "⚡")
    assert result.outcome == "sent", result.reason
    assert result.fields["route"] == "flash"
    (event,) = _mined(chain, block, 1)
    assert (event["liquidator"], event["user"]) == (rt.liquidator_contract, user)
    received = _balance(chain, "USDC", owner)
    with rt.sessions() as s:
        (row,) = attempts_for(s, user)
    assert row.route == "flash"
    assert row.reason == f"flash: simulated profit {received} (debt asset units)"  # received exactly what was quoted
    assert 0 < row.expected_profit_base < received * row.debt_price // 10**6  # less the gas and the tip bid
    for symbol in m.reserves:  # the contract keeps nothing
        assert _balance(chain, symbol, rt.liquidator_contract) == 0


def test_inventory_when_it_is_cheaper_flash_when_inventory_falls_short(chain: Devnet, flash_rt):
    rt, m = flash_rt, chain.market
    owner = m.account("liquidator").address
    first = open_position(chain, "user4", weth=10, usdc=15_000)
    second = open_position(chain, "user5", weth=10, usdc=15_000)
    block = move_price(m, "WETH", pct=-12).block

    full = run_and_record(rt, attempt_record(first, block), "⚡")  # 100 M USD of every asset on hand
    assert full.outcome == "sent", full.reason
    assert full.fields["route"] == "inventory"
    assert full.reason.startswith("inventory over flash: net")  # both simulated: no premium, no swap, less gas

    give_away_inventory(chain, owner, keep={"USDC": 500 * 10**6})  # covers a tenth of what the close factor allows
    short = run_and_record(rt, attempt_record(second, block), "⚡")
    assert short.outcome == "sent", short.reason
    assert short.fields["route"] == "flash"
    assert "; flash over inventory: net" in short.reason
    events = {e["user"]: e for e in _mined(chain, block, 2)}
    assert events[first]["liquidator"] == owner
    assert events[second]["liquidator"] == rt.liquidator_contract
    assert events[second]["debtToCover"] > 500 * 10**6


def test_without_a_dex_route_or_a_contract_inventory_is_used_as_before(chain: Devnet, env, monkeypatch):
    rt = runtime_with(monkeypatch)
    assert rt.liquidator_contract is None
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    block = move_price(chain.market, "WETH", pct=-12).block
    result = run_and_record(rt, attempt_record(user, block), "⚡")
    assert result.outcome == "sent", result.reason
    assert result.fields["route"] == "inventory"


def test_a_group_of_flash_liquidations_is_quoted_in_the_order_it_is_mined(chain: Devnet, flash_rt):
    """Each sale moves the DEX price the next one gets: quoted one by one, the later calls of a group would
    promise too much and revert; simulated in order (one more round trip) every one of them lands."""
    rt, m = flash_rt, chain.market
    users = [open_position(chain, who, weth=200, usdc=300_000) for who in ("user4", "user5", "user6")]
    block = move_price(m, "WETH", pct=-12).block
    give_away_inventory(chain, m.account("liquidator").address)
    rt.state.claim_many(users[1:], 2, 5)
    result = run_and_record(rt, attempt_record(users[0], block), "⚡", group=[(u, f"task-{u}") for u in users[1:]])
    assert result.outcome == "sent", result.reason
    with rt.sessions() as s:
        rows = [attempts_for(s, u)[0] for u in users]
    assert [r.route for r in rows] == ["flash"] * 3
    for row in rows:
        receipt = wait_until(lambda row=row: chain.rpc.call("eth_getTransactionReceipt", row.tx_hash), 10, "mined")
        assert int(receipt["status"], 16) == 1, row.user
