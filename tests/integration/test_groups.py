"""Users detected together are liquidated together; the batch send leaves no nonce hole; the
one-trip snapshot agrees with the two-trip one; bookkeeping gives the lane right of way."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from liqbot.chain.sender import Sent, Tx
from liqbot.chain.snapshot import read_snapshot, read_snapshots
from liqbot.devnet import Devnet, move_price
from liqbot.domain.fees import Fees
from liqbot.errors import RpcError
from liqbot.execution import run_and_record
from liqbot.runtime import Runtime
from liqbot.store.attempts import attempts_for
from tests.helpers import liquidations, open_position, wait_until

GWEI = 10**9


def _record(user: str, task_id: str) -> dict:
    now = time.time()
    return {"user": user, "path": "fast", "task_id": task_id, "detected_block": 1, "detected_at": now, "started_at": now}


@pytest.mark.aave
def test_users_detected_together_are_liquidated_by_the_first_task_and_once(chain: Devnet, rt: Runtime):
    users = [open_position(chain, who, weth=10, usdc=15_000 + 100 * i) for i, who in enumerate(("user4", "user5", "user6"))]
    start = move_price(chain.market, "WETH", pct=-10).block
    ids = {u: str(uuid.uuid4()) for u in users}
    first, *siblings = users

    result = run_and_record(rt, _record(first, ids[first]), "⚡", [(u, ids[u]) for u in siblings])

    assert result.outcome == "sent", result.reason
    # A batch of sends is accepted before anvil has mined all of it: wait for the blocks, not a second.
    wait_until(lambda: len(liquidations(chain.rpc, chain.market.pool, start)) >= len(users), 10, "the group's blocks")
    events = liquidations(chain.rpc, chain.market.pool, start)
    assert sorted(e["user"] for e in events) == sorted(users)
    with rt.sessions() as s:
        rows = [a for u in users for a in attempts_for(s, u)]
    assert [r.outcome for r in rows] == ["sent"] * 3
    assert sorted(r.nonce for r in rows) == list(range(min(r.nonce for r in rows), min(r.nonce for r in rows) + 3))
    assert {r.task_id for r in rows} == set(ids.values())
    # The siblings' own tasks, when they start, find their users handled and record nothing more.
    for u in siblings:
        assert run_and_record(rt, _record(u, ids[u]), "⚡").outcome == "grouped"
    with rt.sessions() as s:
        assert sum(len(attempts_for(s, u)) for u in users) == 3


def test_a_group_member_another_worker_holds_is_left_to_it(chain: Devnet, rt: Runtime):
    a = open_position(chain, "user4", weth=10, usdc=15_000)
    b = open_position(chain, "user5", weth=10, usdc=15_000)
    start = move_price(chain.market, "WETH", pct=-10).block
    rt.state.r.set(rt.state.key("executing", b), "someone-else", px=5_000)

    assert run_and_record(rt, _record(a, "t-a"), "⚡", [(b, "t-b")]).outcome == "sent"

    wait_until(lambda: liquidations(chain.rpc, chain.market.pool, start), 10, "the liquidation's block")
    assert [e["user"] for e in liquidations(chain.rpc, chain.market.pool, start)] == [a]
    assert rt.state.r.get(rt.state.key("executing", b)) == "someone-else"


def test_a_refused_transaction_in_a_batch_send_leaves_no_nonce_hole(chain: Devnet, rt: Runtime):
    sender = rt.sender
    nonce0 = int(chain.rpc.call("eth_getTransactionCount", sender.address, "pending"), 16)
    fees = Fees(max_fee=100 * GWEI, tip=GWEI)
    to = chain.market.account("treasury").address
    txs = [Tx(to, "0x", 21_000, fees), Tx(to, "0x", 10**12, fees), Tx(to, "0x", 21_000, fees)]  # gas above any block

    results = sender.send_many(txs)

    assert isinstance(results[0], Sent)
    assert isinstance(results[2], Sent)
    assert isinstance(results[1], RpcError)
    assert (results[0].nonce, results[2].nonce) == (nonce0, nonce0 + 2)
    # The hole at nonce0 + 1 was filled, so the transaction after it mined.
    receipt = wait_until(lambda: chain.rpc.call("eth_getTransactionReceipt", results[2].tx_hash), 10, "its receipt")
    assert receipt["status"] == "0x1"
    assert int(chain.rpc.call("eth_getTransactionCount", sender.address, "latest"), 16) == nonce0 + 3


def test_a_batch_whose_last_transactions_are_refused_hands_their_nonces_to_the_next_send(chain: Devnet, rt: Runtime):
    sender = rt.sender
    nonce0 = int(chain.rpc.call("eth_getTransactionCount", sender.address, "pending"), 16)
    fees = Fees(max_fee=100 * GWEI, tip=GWEI)
    to = chain.market.account("treasury").address

    first = sender.send_many([Tx(to, "0x", 21_000, fees), Tx(to, "0x", 10**12, fees)])
    assert isinstance(first[0], Sent)
    assert isinstance(first[1], RpcError)
    (again,) = sender.send_many([Tx(to, "0x", 21_000, fees)])
    assert isinstance(again, Sent)
    assert again.nonce == nonce0 + 1


def test_one_trip_snapshots_agree_with_two_trip_ones(chain: Devnet, rt: Runtime):
    a = open_position(chain, "user4", weth=10, usdc=15_000)
    b = open_position(chain, "user5", weth=5, usdc=5_000, wbtc=1)
    plain = {u: read_snapshot(rt.rpc, rt.market, u, rt.sender.address, rt.native_asset) for u in (a, b)}
    assert all(s.round_trips == 2 for s in plain.values())
    weth = chain.market.reserve("WETH").address
    weth_only = 3 << (2 * next(r.id for r in rt.market.reserves if r.asset == weth))
    got = read_snapshots(rt.rpc, rt.market, [(a, plain[a].config), (b, weth_only)], rt.sender.address, rt.native_asset)
    assert [s.round_trips for s in got] == [1, 2]  # b's guess missed WBTC and USDC: a second trip for b alone
    for snap in got:
        ref = plain[snap.account.user]
        assert snap.positions == ref.positions
        assert snap.inventory == ref.inventory
        assert snap.config == ref.config


def test_bookkeeping_waits_while_the_lane_works_but_never_past_its_cap(rt: Runtime):
    state = rt.state
    assert state.yield_to_lane(1.0) < 0.5  # an idle lane: no wait
    state.claim_many(["0x" + "11" * 20], 2, 5, lane_ms=150)
    waited = state.yield_to_lane(5.0)
    assert waited > 0
    assert not state.r.exists(state.key("lane", "active"))
    state.claim_many(["0x" + "22" * 20], 2, 5, lane_ms=10_000)
    assert state.yield_to_lane(0.05) >= 0.05
    assert state.r.exists(state.key("lane", "active"))  # it gave up at its cap, the lane still busy


def test_a_groups_first_task_waits_ahead_of_its_siblings(rt: Runtime):
    from liqbot.tasks.routing import Detection, route_liquidations

    rt.state.heartbeat("priority@test")  # a live lane, no worker consuming: the messages stay queued
    users = ["0x" + f"{i + 1:040x}" for i in range(3)]
    assert route_liquidations([Detection(u, 7, time.time(), "fast") for u in users]) == ["priority"] * 3

    assert rt.state.queue_depth("priority") == 3
    (leader,) = rt.state.r.lrange("priority", 0, -1)  # served first: kombu polls the plain list first
    assert rt.state.r.llen("priority\x06\x169") == 2  # the siblings wait on the lowest priority list
    args = json.loads(base64.b64decode(json.loads(leader)["body"]))[0]
    assert args[0] == users[0]
    assert sorted(u for u, _ in args[5]) == users[1:]  # it carries the others, to liquidate them with it
