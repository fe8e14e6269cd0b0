"""Back-running a pending price update: the producer sees the update in the mempool, learns the prices it
will set by simulating it, screens its mirror at those prices and routes each user it will make
liquidatable with a plan and the update attached; the worker simulates [update, liquidation] together and
sends with the update's max fee, so the liquidation is mined in the update's own block, right after it."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from liqbot.devnet import Devnet, interval_mining, move_price
from liqbot.domain.plan import PendingUpdate, Plan
from liqbot.execution import run_and_record
from liqbot.runtime import Runtime
from tests.helpers import (
    attempt_record,
    liquidations,
    mirror_producer,
    open_position,
    plan_from_chain,
    runtime_with,
    wait_until,
)

pytestmark = pytest.mark.aave()


def _pending(chain: Devnet, tx_hash: str) -> dict:
    """The node's full object of a pending transaction, as `newPendingTransactions` delivers it."""
    return wait_until(lambda: chain.rpc.call("eth_getTransactionByHash", tx_hash), 5, "the update in the pool")


def test_a_pending_update_is_backrun_in_its_own_block(chain: Devnet, rt: Runtime):
    safe = open_position(chain, "user4", weth=10, usdc=9_000)
    risky = open_position(chain, "user5", weth=10, usdc=15_000)
    producer = mirror_producer(chain, rt, [safe, risky])
    rt.warm()  # a worker's start-up: its approvals mined before anything is pending
    with interval_mining(chain.rpc, 2):
        move = move_price(chain.market, "WETH", pct=-12, wait=False)
        assert move.block is None
        update = _pending(chain, move.tx_hash)
        assert update["blockNumber"] is None
        producer.on_pending([update], time.time())
        raw = rt.state.r.get(rt.state.key("plan", risky))
        assert raw is not None  # routed with its plan
        assert not rt.state.r.exists(rt.state.key("dedupe", safe))
        plan = Plan.from_message(json.loads(raw))
        assert plan is not None
        assert plan.after is not None
        assert plan.after.tx_hash == move.tx_hash
        assert producer.mirror.price(chain.market.reserve("WETH").address) == move.old  # the what-if left no trace

        result = run_and_record(rt, {**attempt_record(risky, plan.block), "path": "backrun"}, "⚡", plan=plan)
        assert result.outcome == "sent", result.reason
        assert f"behind pending {move.tx_hash}" in result.reason
        assert result.fields["max_fee"] == int(update["maxFeePerGas"], 16)
        mined = wait_until(lambda: chain.rpc.call("eth_getTransactionReceipt", result.fields["tx_hash"]), 10, "ours mined")
    upd = chain.rpc.call("eth_getTransactionReceipt", move.tx_hash)
    assert int(mined["status"], 16) == 1
    assert mined["blockNumber"] == upd["blockNumber"]  # the same block...
    assert int(mined["transactionIndex"], 16) > int(upd["transactionIndex"], 16)  # ...right behind it
    (event,) = liquidations(chain.rpc, chain.market.pool, int(upd["blockNumber"], 16))
    assert event["user"] == risky


def test_a_backrun_whose_update_will_not_help_is_not_sent(chain: Devnet, rt: Runtime):
    """Simulated behind an update that does not make the user liquidatable: skipped, its lock released so
    the detection after the mined update is not deduplicated away."""
    user = open_position(chain, "user4", weth=10, usdc=9_000)
    producer = mirror_producer(chain, rt, [user])
    snap = chain.snapshot()
    move_price(chain.market, "WETH", pct=-50)
    deep = plan_from_chain(rt, user)  # the plan a -50% update would have made
    chain.revert(snap)
    rt.warm()
    with interval_mining(chain.rpc, 2):
        move = move_price(chain.market, "WETH", pct=-2, wait=False)
        update = _pending(chain, move.tx_hash)
        producer.on_pending([update], time.time())
        assert not rt.state.r.exists(rt.state.key("plan", user))  # nothing liquidatable behind it: nothing routed
        plan = replace(deep, after=PendingUpdate.from_tx(update))
        rt.state.r.set(rt.state.key("dedupe", user), "1", px=2000)
        result = run_and_record(rt, {**attempt_record(user), "path": "backrun"}, "⚡", plan=plan)
    assert result.outcome == "skipped"
    assert result.reason.startswith(f"backrun of {move.tx_hash}: reverted in simulation")
    assert not rt.state.r.exists(rt.state.key("dedupe", user))


def test_a_backrun_whose_update_is_replaced_is_cancelled_not_left_to_revert(chain: Devnet, rt: Runtime):
    from liqbot.chain import aave
    from liqbot.store.attempts import attempts_for
    from liqbot.tasks.guard import guard_backrun

    risky = open_position(chain, "user5", weth=10, usdc=15_000)
    producer = mirror_producer(chain, rt, [risky])
    rt.warm()
    with interval_mining(chain.rpc, 4):
        move = move_price(chain.market, "WETH", pct=-12, wait=False)
        update = _pending(chain, move.tx_hash)
        producer.on_pending([update], time.time())
        plan = Plan.from_message(json.loads(rt.state.r.get(rt.state.key("plan", risky))))
        result = run_and_record(rt, {**attempt_record(risky, plan.block), "path": "backrun"}, "⚡", plan=plan)
        assert result.outcome == "sent", result.reason
        # The oracle's owner changes its mind: the same nonce, higher fees, the old answer.
        fees = {k: hex(int(update[k], 16) * 2) for k in ("maxFeePerGas", "maxPriorityFeePerGas")}
        chain.rpc.call("eth_sendTransaction", {"from": update["from"], "to": update["to"], "nonce": update["nonce"],
                                               "data": aave.SET_ANSWER.calldata(move.old), "gas": update["gas"], **fees})
        f = result.fields
        assert guard_backrun.apply(args=(move.tx_hash, [[risky, f["tx_hash"], f["nonce"], f["max_fee"], f["tip"]]],
                                         time.time())).get() == "cancelled"
        start = int(chain.rpc.call("eth_blockNumber"), 16)
        wait_until(lambda: int(chain.rpc.call("eth_blockNumber"), 16) > start, 10, "the next block")
    assert chain.rpc.call("eth_getTransactionReceipt", f["tx_hash"]) is None  # replaced by the cancel: never mined
    assert liquidations(chain.rpc, chain.market.pool, start) == []
    with rt.sessions() as s:
        (row,) = attempts_for(s, risky)
    assert row.outcome == "cancelled"
    assert f"the update it backs ({move.tx_hash}) was dropped or replaced" in row.reason


def test_the_bundle_route_carries_the_update_ahead_of_the_backrun(chain: Devnet, env: dict, monkeypatch):
    """SUBMIT_ROUTE=bundle: the producer keeps the update's signed bytes, the worker sends [update, ours] as one
    bundle to the relay (the double forwards it to anvil in order). The update is dropped from the node's pool
    first: only the bundle can bring it back, and both land in one block, in that order."""
    from tests.integration.test_bundles import RELAY_KEY
    from tests.relay_double import RelayDouble

    risky = open_position(chain, "user5", weth=10, usdc=15_000)
    with RelayDouble(forward_to=chain.anvil.http_url) as relay:
        rt = runtime_with(monkeypatch, SUBMIT_ROUTE="bundle", RELAY_URLS=relay.url, RELAY_SIGNING_KEY=RELAY_KEY)
        producer = mirror_producer(chain, rt, [risky])
        rt.warm()
        with interval_mining(chain.rpc, 2):
            move = move_price(chain.market, "WETH", pct=-12, wait=False)
            producer.on_pending([_pending(chain, move.tx_hash)], time.time())
            chain.rpc.call("anvil_dropTransaction", move.tx_hash)
            plan = Plan.from_message(json.loads(rt.state.r.get(rt.state.key("plan", risky))))
            assert plan.after.raw
            result = run_and_record(rt, {**attempt_record(risky, plan.block), "path": "backrun"}, "⚡", plan=plan)
            assert result.outcome == "sent", result.reason
            ours = wait_until(lambda: chain.rpc.call("eth_getTransactionReceipt", result.fields["tx_hash"]), 10, "mined")
    (bundle,) = relay.bundles
    assert bundle.txs[0] == plan.after.raw
    upd = chain.rpc.call("eth_getTransactionReceipt", move.tx_hash)
    assert ours["blockNumber"] == upd["blockNumber"]
    assert int(ours["transactionIndex"], 16) == int(upd["transactionIndex"], 16) + 1
    assert int(ours["status"], 16) == 1
