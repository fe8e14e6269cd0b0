"""Execution on the real Aave devnet: close-factor sizing, the pair choice, the profit gate, and
predictions checked against what the Pool actually seizes."""

from __future__ import annotations

import json

import pytest

from liqbot.chain import aave
from liqbot.chain.snapshot import read_snapshot
from liqbot.devnet import Devnet, move_price
from liqbot.devnet.txs import TxSender
from liqbot.domain.liquidation import decide
from liqbot.execution import rules_for, run_and_record
from liqbot.runtime import Runtime
from liqbot.store.attempts import attempts_for
from tests.helpers import attempt_record, liquidations, open_position, wait_until

pytestmark = pytest.mark.aave()  # close factor, dust and pair rules differ from v3.3 on
WAD = 10**18


def _predict(rt: Runtime, user: str):
    snap = read_snapshot(rt.rpc, rt.market, user, rt.sender.address, rt.native_asset)
    d = decide(snap.positions, health_factor=snap.account.health_factor, total_debt_base=snap.account.debt_base,
               rules=rules_for(rt), inventory=snap.inventory, gas_cost_base=0, min_profit_base=0)
    return snap, d


@pytest.mark.parametrize(("pct", "share"), [(-10, "half"), (-20, "all")])
def test_close_factor_half_above_095_all_below_and_the_seizure_matches_the_pool(chain: Devnet, rt: Runtime, pct: int,
                                                                                 share: str):
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    start = move_price(chain.market, "WETH", pct=pct).block
    snap, decision = _predict(rt, user)
    hf = snap.account.health_factor
    assert (0.95 * WAD < hf < WAD) if share == "half" else (hf <= 0.95 * WAD)
    debt = next(p.debt for p in snap.positions if p.debt)

    result = run_and_record(rt, attempt_record(user), "⚡")
    assert result.outcome == "sent", result.reason
    (event,) = liquidations(chain.rpc, chain.market.pool, start)
    expected_cover = debt // 2 if share == "half" else debt
    assert event["debtToCover"] == pytest.approx(expected_cover, rel=1e-6)
    # What the pure core predicted is what the Pool did (up to a second of interest).
    plan = decision.plan
    assert plan is not None
    assert event["debtToCover"] == pytest.approx(plan.seizure.debt_repaid, rel=1e-6)
    assert event["liquidatedCollateralAmount"] == pytest.approx(plan.seizure.collateral, rel=1e-6)


def test_a_user_with_several_collaterals_is_liquidated_on_the_most_profitable_pair(chain: Devnet, rt: Runtime):
    # $10k of WETH (bonus 5%) and $10k of WBTC (bonus 6.5%) against $14k USDC; WETH falls 25%.
    user = open_position(chain, "user5", weth=5, usdc=14_000, wbtc=1)
    m = chain.market
    move_price(m, "WBTC", usd="10000")  # 1 WBTC = $10k for round numbers
    start = move_price(m, "WETH", pct=-25).block
    _, decision = _predict(rt, user)
    assert decision.plan is not None
    assert decision.plan.collateral_asset == m.reserve("WBTC").address
    assert run_and_record(rt, attempt_record(user), "⚡").outcome == "sent"
    (event,) = liquidations(chain.rpc, m.pool, start)
    assert event["collateralAsset"] == m.reserve("WBTC").address
    assert event["debtAsset"] == m.reserve("USDC").address


def test_a_dust_position_that_cannot_pay_for_its_gas_is_skipped_with_the_reason(chain: Devnet, rt: Runtime):
    m = chain.market
    user = m.account("user6").address
    tx = TxSender(chain.rpc)
    weth, usdc = m.reserve("WETH").address, m.reserve("USDC").address
    tx.call(user, weth, aave.MINT_TO, user, 10**16)  # $20 of WETH
    tx.call(user, weth, aave.APPROVE, m.pool, aave.UINT256_MAX)
    tx.call(user, m.pool, aave.SUPPLY, weth, 10**16, user, 0)
    tx.call(user, m.pool, aave.BORROW, usdc, 15 * 10**6, aave.VARIABLE_RATE, 0, user)  # $15 of USDC
    tx.settle()
    start = move_price(m, "WETH", pct=-15).block
    assert read_snapshot(rt.rpc, rt.market, user).account.liquidatable
    result = run_and_record(rt, attempt_record(user), "⚡")
    assert (result.outcome, result.reason) == ("skipped", "unprofitable")
    with rt.sessions() as s:
        (attempt,) = attempts_for(s, user)
    assert (attempt.outcome, attempt.reason) == ("skipped", "unprofitable")
    assert attempt.expected_profit_base < 0
    assert liquidations(chain.rpc, m.pool, start) == []


def test_dry_run_does_everything_but_send(chain: Devnet, env: dict, monkeypatch: pytest.MonkeyPatch):
    from tests.integration.conftest import reset_caches

    monkeypatch.setenv("DRY_RUN", "true")
    reset_caches()
    from liqbot.runtime import runtime

    rt = runtime()
    user = open_position(chain, "user7", weth=10, usdc=15_000)
    start = move_price(chain.market, "WETH", pct=-10).block
    result = run_and_record(rt, attempt_record(user), "⚡")
    assert result.outcome == "dry_run"
    with rt.sessions() as s:
        (attempt,) = attempts_for(s, user)
    assert attempt.outcome == "dry_run"
    assert attempt.tx_hash is None
    assert attempt.expected_profit_base > 0
    assert attempt.debt_asset == chain.market.reserve("USDC").address
    assert liquidations(chain.rpc, chain.market.pool, start) == []


def test_a_stale_market_is_rediscovered_in_the_background_never_on_the_lane(chain: Devnet, rt: Runtime):
    known = rt.market
    rt._market_at -= 10_000  # older than MARKET_REFRESH_SECS
    assert rt.market is known  # served at once, as it is
    wait_until(lambda: rt.market is not known, 10, "the market rediscovered")
    assert rt.market.pool == known.pool
    assert rt.market.reserves == known.reserves


def test_a_user_whose_account_read_reverts_is_parked_and_never_trips_the_breaker(chain: Devnet, rt: Runtime,
                                                                                  monkeypatch: pytest.MonkeyPatch):
    """The Pool's getUserAccountData reverting for one user (a panic seen once in a failover run) is that user's
    state: its group-mates are read alone and liquidated, it is skipped and parked, the breaker hears nothing."""
    from liqbot import execution
    from liqbot.errors import RpcError

    users = [open_position(chain, who, weth=10, usdc=15_000) for who in ("user4", "user5")]
    block = move_price(chain.market, "WETH", pct=-20).block
    real = execution.read_snapshots

    def reverting(rpc, market, guesses, *args, **kwargs):
        if any(user == users[0] for user, _ in guesses):
            raise RpcError("eth_call", {"code": 3, "message": "execution reverted: panic: arithmetic underflow (0x11)"})
        return real(rpc, market, guesses, *args, **kwargs)

    monkeypatch.setattr(execution, "read_snapshots", reverting)
    for _ in range(rt.settings.breaker_max_failures + 1):
        run_and_record(rt, attempt_record(users[0], block), "⚡", group=[(users[1], "sibling")])
        rt.state.release(users[0])
    assert rt.breaker.status()["state"] == "closed"
    with rt.sessions() as s:
        first = attempts_for(s, users[0])[0]
        assert first.outcome == "skipped"
        assert first.reason.startswith("the Pool's account read reverts for this user")
        assert [a.outcome for a in attempts_for(s, users[1])] == ["sent"]
    assert users[0] in {u for u, _, _ in rt.state.parked(10)[1]}
    assert rt.state.parked_among([users[0]]) == {users[0]}  # scans leave it alone for a while...
    key = rt.state.key("parked")
    entry = json.loads(rt.state.r.hget(key, users[0]))
    assert entry["until"] == pytest.approx(entry["at"] + execution.UNREADABLE_RETRY_SECS)
    rt.state.r.hset(key, users[0], json.dumps({**entry, "until": entry["at"] - 1}))  # that long later
    assert rt.state.parked_among([users[0]]) == set()  # ...then route it again (the revert may have passed)
