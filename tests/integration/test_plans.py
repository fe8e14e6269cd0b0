"""A plan made where the user was detected travels with the task: the worker verifies it by simulating
the exact call and sends, without reading the user again; a plan the chain disagrees with falls back
to the fresh read, and the record says why."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from liqbot.devnet import Devnet, move_price
from liqbot.domain.plan import Plan
from liqbot.execution import PLAN_TRUST_SECS, TRUST_SUSPENDED, UNSIMULATED, run_and_record
from liqbot.runtime import Runtime
from liqbot.store.attempts import attempts_for
from tests.helpers import give_away_inventory, liquidations, open_position, plan_from_chain, wait_until

pytestmark = pytest.mark.aave()


def _record(user: str, block: int) -> dict:
    now = time.time()
    return {"user": user, "path": "fast", "detected_block": block, "detected_at": now, "started_at": now}


def _mined(chain: Devnet, block: int, n: int) -> list[dict]:
    """anvil answers a send before it has mined it: wait for the liquidations' logs."""
    return wait_until(lambda: (ev := liquidations(chain.rpc, chain.market.pool, block)) and len(ev) >= n and ev, 10,
                      f"{n} liquidations mined")


def test_a_plan_is_simulated_and_sent_without_a_fresh_read(chain: Devnet, rt: Runtime):
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    block = move_price(chain.market, "WETH", pct=-20).block
    plan = plan_from_chain(rt, user)
    assert Plan.from_message(json.loads(json.dumps(plan.to_message()))) == plan
    result = run_and_record(rt, _record(user, block), "⚡", plan=plan)
    assert result.outcome == "sent", result.reason
    assert set(result.stages_ms) == {"sim", "send"}  # two round trips: no read
    (event,) = _mined(chain, block, 1)
    assert event["user"] == user
    assert event["debtToCover"] == pytest.approx(plan.candidate.seizure.debt_repaid, rel=1e-6)


def test_a_plan_the_chain_disagrees_with_falls_back_to_a_fresh_read(chain: Devnet, rt: Runtime):
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    block = move_price(chain.market, "WETH", pct=-20).block
    good = plan_from_chain(rt, user)
    wbtc = chain.market.reserve("WBTC").address  # the user holds none: the Pool refuses this pair
    c = good.candidate
    wrong = Plan(type(c)(wbtc, c.debt_asset, c.debt_to_cover, c.seizure, c.gross_profit_base), good.debt_arg,
                 good.collateral_price, good.debt_price, good.native_price, good.block)
    result = run_and_record(rt, _record(user, block), "⚡", plan=wrong)
    assert result.outcome == "sent", result.reason
    assert "read" in result.stages_ms
    assert result.reason.startswith(f"plan of block {good.block} disagreed")
    (event,) = _mined(chain, block, 1)
    assert event["collateralAsset"] == c.collateral_asset
    with rt.sessions() as s:
        (row,) = attempts_for(s, user)
    assert row.reason.startswith("plan of block")


def test_malformed_plans_are_refused():
    assert Plan.from_message(None) is None
    assert Plan.from_message({"collateral_asset": "0x1"}) is None
    assert Plan.from_message({"collateral_asset": "0x" + "11" * 20, "debt_asset": "0x" + "22" * 20,
                              **dict.fromkeys(("debt_to_cover", "debt_arg", "collateral_seized", "protocol_fee",
                                               "debt_repaid", "gross_profit_base", "collateral_price", "debt_price",
                                               "native_price", "block"), -1)}) is None


def test_a_groups_siblings_bring_the_plans_their_routing_left(chain: Devnet, rt: Runtime):
    users = [open_position(chain, who, weth=10, usdc=15_000 + 100 * i) for i, who in enumerate(("user4", "user5"))]
    block = move_price(chain.market, "WETH", pct=-20).block
    plans = {u: plan_from_chain(rt, u) for u in users}
    rt.state.claim_many(users, 2, 5, plans={u: json.dumps(p.to_message()) for u, p in plans.items()}, plan_ms=30_000)
    result = run_and_record(rt, _record(users[0], block), "⚡", group=[(users[1], "sibling-task")], plan=plans[users[0]])
    assert result.outcome == "sent", result.reason
    assert (set(result.stages_ms), result.group) == ({"sim", "send"}, 2)
    assert {e["user"] for e in _mined(chain, block, 2)} == set(users)


def _ready(rt: Runtime) -> None:
    """As a worker starts: its approvals known, its inventory read."""
    rt.warm()


def _fresh(plan: Plan, base_fee: int = 10**9) -> Plan:
    """The plan as the producer's mirror makes it: with the base fee of the head it saw."""
    return replace(plan, base_fee=base_fee)


def test_a_fresh_mirror_plan_paid_from_inventory_is_sent_without_simulation(chain: Devnet, rt: Runtime):
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    block = move_price(chain.market, "WETH", pct=-20).block
    _ready(rt)
    result = run_and_record(rt, _record(user, block), "⚡", plan=_fresh(plan_from_chain(rt, user)))
    assert result.outcome == "sent", result.reason
    assert set(result.stages_ms) == {"send"}  # one round trip
    assert result.reason == UNSIMULATED
    (event,) = _mined(chain, block, 1)
    assert event["user"] == user


def test_plans_are_simulated_when_old_without_a_base_fee_or_without_known_inventory(chain: Devnet, rt: Runtime):
    users = [open_position(chain, who, weth=10, usdc=15_000 + 100 * i) for i, who in enumerate(("user4", "user5", "user6"))]
    block = move_price(chain.market, "WETH", pct=-20).block
    old = {**_record(users[0], block), "detected_at": time.time() - 2 * PLAN_TRUST_SECS}
    _ready(rt)
    for user, record, plan in ((users[0], old, _fresh(plan_from_chain(rt, users[0]))),
                               (users[1], _record(users[1], block), plan_from_chain(rt, users[1]))):
        result = run_and_record(rt, record, "⚡", plan=plan)
        assert result.outcome == "sent", result.reason
        assert set(result.stages_ms) == {"sim", "send"}, user
    rt._inventory = None  # never read: nothing known held
    result = run_and_record(rt, _record(users[2], block), "⚡", plan=_fresh(plan_from_chain(rt, users[2])))
    assert set(result.stages_ms) == {"sim", "send"}


def test_a_send_without_simulation_that_reverts_for_our_own_reason_suspends_the_trust(chain: Devnet, rt: Runtime):
    """The inventory known at the last read is gone (another process spent it): the unsimulated send reverts,
    the receipt tracker suspends the trust, and the next plan is simulated (then read fresh: nothing to pay with)."""
    from liqbot.tasks.receipts import track_receipts  # imports the Celery app: settings from the test's env

    users = [open_position(chain, who, weth=10, usdc=15_000 + 100 * i) for i, who in enumerate(("user4", "user5"))]
    block = move_price(chain.market, "WETH", pct=-20).block
    plans = {u: _fresh(plan_from_chain(rt, u)) for u in users}
    _ready(rt)
    give_away_inventory(chain, rt.sender.address)
    result = run_and_record(rt, _record(users[0], block), "⚡", plan=plans[users[0]])
    assert result.outcome == "sent", result.reason
    assert result.reason == UNSIMULATED
    wait_until(lambda: track_receipts() and _outcome(rt, users[0]) == "reverted", 20, "the revert recorded")
    assert rt.state.r.exists(rt.state.key(TRUST_SUSPENDED))
    result = run_and_record(rt, _record(users[1], block), "⚡", plan=plans[users[1]])
    assert result.reason != UNSIMULATED
    assert result.outcome == "skipped"
    assert result.reason == "no inventory"  # simulated, disagreed, read fresh


def _outcome(rt: Runtime, user: str) -> str:
    with rt.sessions() as s:
        (row,) = attempts_for(s, user)
        return row.outcome


def test_a_user_whose_liquidation_awaits_its_receipt_is_not_sent_again_when_redis_forgot_it(chain: Devnet, rt: Runtime):
    """Redis restarted (no "sent" mark in the dedupe key) while our transaction waits in the mempool: the
    attempts table still says "sent", and the second attempt stops there, simulated or not."""
    from sqlalchemy import update

    from liqbot.store.attempts import record_attempt
    from liqbot.store.db import Attempt

    user = open_position(chain, "user4", weth=10, usdc=15_000)
    block = move_price(chain.market, "WETH", pct=-20).block
    _ready(rt)
    old = time.time() - rt.settings.liquidation_max_age_secs - 1  # a reorg dropped it: no longer awaited
    with rt.sessions.begin() as s:
        record_attempt(s, user=user, path="backrun", detected_block=block, detected_at=old, outcome="sent",
                       tx_hash="0x" + "aa" * 32, nonce=1, sent_at=old)
        record_attempt(s, user=user, path="backrun", detected_block=block, detected_at=time.time(), outcome="sent",
                       tx_hash="0x" + "ab" * 32, nonce=2, sent_at=time.time())
    plan = _fresh(plan_from_chain(rt, user))
    result = run_and_record(rt, _record(user, block), "⚡", plan=plan)
    assert result.outcome == "skipped"
    assert result.reason == "already sent, awaiting its receipt"
    with rt.sessions.begin() as s:
        s.execute(update(Attempt).where(Attempt.tx_hash == "0x" + "ab" * 32).values(sent_at=old))
    result = run_and_record(rt, _record(user, block), "⚡", plan=plan)
    assert result.outcome == "sent", result.reason
