"""A plan made where the user was detected travels with the task: the worker verifies it by simulating
the exact call and sends, without reading the user again; a plan the chain disagrees with falls back
to the fresh read, and the record says why."""

from __future__ import annotations

import json
import time

import pytest

from liqbot.devnet import Devnet, move_price
from liqbot.domain.plan import Plan
from liqbot.execution import run_and_record
from liqbot.runtime import Runtime
from liqbot.store.attempts import attempts_for
from tests.helpers import liquidations, open_position, plan_from_chain, wait_until

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
