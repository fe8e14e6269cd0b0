"""Dedupe and fallback against the real Redis and an in-process worker on the real Aave devnet."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker

from liqbot.celery import app
from liqbot.chain.reader import account_data
from liqbot.devnet import Devnet
from liqbot.producer.listener import Producer
from liqbot.runtime import Runtime
from liqbot.store.attempts import attempts_for
from liqbot.tasks import liquidate
from liqbot.tasks.routing import Detection, route_liquidation
from liqbot.tasks.scan import scan_users
from tests.helpers import liquidations, make_liquidatable_borrower, wait_until


def _queue_len(rt: Runtime, queue: str) -> int:
    return rt.state.queue_depth(queue)


def _run(queues: list[str]):
    return start_worker(app, pool="solo", queues=queues, perform_ping_check=False, loglevel="WARNING",
                        shutdown_timeout=30)


def _wait_attempt(rt: Runtime, user: str):
    def sent():
        with rt.sessions() as s:
            return [a for a in attempts_for(s, user) if a.tx_hash]

    return wait_until(sent, 30, f"a liquidation attempt for {user}")


def test_producer_and_scanner_detecting_the_same_user_make_one_attempt(chain: Devnet, rt: Runtime):
    user = make_liquidatable_borrower(chain)
    block = int(chain.rpc.call("eth_blockNumber"), 16)
    start = block
    rt.state.heartbeat("test-priority")  # a live priority lane

    Producer(rt).fast_check({user: block}, time.time())  # the producer's fast path...
    scan_users([user], "test scan")  # ...and the scanner, inside the dedupe window
    assert _queue_len(rt, "priority") == 1
    assert _queue_len(rt, "default") == 0
    assert rt.state.counters()["deduped"] == 1

    with _run(["priority"]):
        attempts = _wait_attempt(rt, user)
    assert len(attempts) == 1
    assert attempts[0].path == "fast"
    assert [e["user"] for e in liquidations(chain.rpc, chain.market.pool, start)] == [user]


def test_after_the_window_a_new_detection_is_routed_again(chain: Devnet, rt: Runtime):
    user = make_liquidatable_borrower(chain)
    rt.state.heartbeat("test-priority")
    det = Detection(user, 1, time.time(), "scan")
    assert route_liquidation(det) == "priority"
    assert route_liquidation(det) is None
    ttl_ms = rt.state.r.pttl(rt.state.key("dedupe", user))
    assert 0 < ttl_ms <= rt.settings.dedupe_window_secs * 1000
    rt.state.r.pexpire(rt.state.key("dedupe", user), 1)  # the window runs out
    time.sleep(0.01)
    assert route_liquidation(det) == "priority"


def test_a_failing_priority_publish_falls_back_to_the_default_queue(chain: Devnet, rt: Runtime,
                                                                    monkeypatch: pytest.MonkeyPatch):
    user = make_liquidatable_borrower(chain)
    start = int(chain.rpc.call("eth_blockNumber"), 16)
    rt.state.heartbeat("test-priority")
    real = liquidate.check_and_liquidate.apply_async

    def flaky(*args, **kwargs):
        if kwargs.get("queue") == "priority":
            raise ConnectionError("priority lane publish failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(liquidate.check_and_liquidate, "apply_async", flaky)
    assert route_liquidation(Detection(user, start, time.time(), "fast")) == "default"
    assert _queue_len(rt, "priority") == 0
    assert _queue_len(rt, "default") == 1
    with _run(["default"]):
        attempts = _wait_attempt(rt, user)
    assert [a.path for a in attempts] == ["fallback"]
    assert rt.state.counters()["fallback"] == 1
    assert [e["user"] for e in liquidations(chain.rpc, chain.market.pool, start)] == [user]


def test_without_a_live_priority_worker_the_task_runs_from_the_default_queue(chain: Devnet, rt: Runtime):
    user = make_liquidatable_borrower(chain)
    start = int(chain.rpc.call("eth_blockNumber"), 16)
    rt.state.r.zadd(rt.state.key("workers:priority"), {"dead-worker": time.time() - 60})  # heartbeat expired
    assert route_liquidation(Detection(user, start, time.time(), "scan")) == "default"
    with _run(["default"]):
        attempts = _wait_attempt(rt, user)
    assert [a.path for a in attempts] == ["fallback"]
    assert [e["user"] for e in liquidations(chain.rpc, chain.market.pool, start)] == [user]


def test_a_user_no_longer_liquidatable_is_skipped_with_the_reason(chain: Devnet, rt: Runtime):
    user = make_liquidatable_borrower(chain)
    from liqbot.devnet import move_price

    move_price(chain.market, "WETH", pct=20)  # recovered before the worker ran
    assert not account_data(chain.rpc, chain.market.pool, [user])[user].liquidatable
    rt.state.heartbeat("test-priority")
    route_liquidation(Detection(user, 1, time.time(), "fast"))
    with _run(["priority"]):
        def skipped():
            with rt.sessions() as s:
                return attempts_for(s, user)

        attempts = wait_until(skipped, 30, "the skip to be recorded")
    assert [(a.outcome, a.reason) for a in attempts] == [("skipped", "no longer liquidatable")]


def test_the_producer_sends_trusted_plans_itself_and_the_lane_records_them(chain: Devnet, rt: Runtime):
    """PRODUCER_SENDS: a fresh inventory plan leaves from the routing process itself, before any task runs; its
    task only records it (once, whatever redelivers it). A plan not fit to be trusted (older than a second) takes
    the lane's usual way."""
    from dataclasses import replace

    from liqbot.devnet import move_price
    from liqbot.execution import PLAN_TRUST_SECS, SENT_BY_PRODUCER
    from liqbot.tasks.routing import route_liquidations
    from tests.helpers import open_position, plan_from_chain

    users = [open_position(chain, who, weth=10, usdc=15_000 + 100 * i) for i, who in enumerate(("user4", "user5", "user6"))]
    block = move_price(chain.market, "WETH", pct=-20).block
    rt.warm()  # as the producer starts: approvals known, inventory read
    rt.state.heartbeat("test-priority")
    now = time.time()
    plans = {u: replace(plan_from_chain(rt, u), base_fee=10**9) for u in users}
    dets = [Detection(u, block, now if u != users[2] else now - 2 * PLAN_TRUST_SECS, "fast", plans[u]) for u in users]

    assert route_liquidations(dets, after_event=True, send=True) == ["priority"] * 3
    mined = wait_until(lambda: (ev := liquidations(chain.rpc, chain.market.pool, block)) and len(ev) >= 2 and ev, 10,
                       "the producer's two sends mined, no worker running")
    assert [e["user"] for e in mined] == sorted(users[:2], key=lambda u: -plans[u].candidate.gross_profit_base)  # best first

    with _run(["priority"]):
        rows = {u: _wait_attempt(rt, u) for u in users}
    assert all(len(r) == 1 and r[0].outcome == "sent" and r[0].path == "fast" for r in rows.values())
    assert [rows[u][0].reason for u in users[:2]] == [SENT_BY_PRODUCER] * 2
    assert rows[users[2]][0].reason != SENT_BY_PRODUCER  # verified by simulation and sent by the worker
    assert {rows[u][0].tx_hash for u in users[:2]} == {e["tx"] for e in mined}
    assert not rt.state.r.hlen(rt.state.key("inflight"))
    redelivered = liquidate.check_and_liquidate.apply(
        (users[0], block, now, "fast"), {"sent": {"tx_hash": rows[users[0]][0].tx_hash}}).get()
    assert redelivered.startswith("skipped")
    with rt.sessions() as s:
        assert len(attempts_for(s, users[0])) == 1


def test_the_producer_sends_nothing_while_a_user_of_its_batch_awaits_a_receipt(chain: Devnet, rt: Runtime):
    """Redis forgot a user's "sent" mark (a restart) while our transaction for it may still wait to be mined: the
    attempts table says so, the producer's batch is not sent, and the lane sends for the others only."""
    from dataclasses import replace

    from liqbot.devnet import move_price
    from liqbot.execution import SENT_BY_PRODUCER
    from liqbot.store.attempts import record_attempts
    from liqbot.tasks.routing import route_liquidations
    from tests.helpers import open_position, plan_from_chain

    users = [open_position(chain, who, weth=10, usdc=15_000 + 100 * i) for i, who in enumerate(("user4", "user5"))]
    block = move_price(chain.market, "WETH", pct=-20).block
    rt.warm()
    rt.state.heartbeat("test-priority")
    now = time.time()
    with rt.sessions.begin() as s:
        record_attempts(s, [{"user": users[0], "path": "fast", "detected_block": block, "detected_at": now,
                             "outcome": "sent", "tx_hash": "0x" + "ab" * 32, "sent_at": now}])
    dets = [Detection(u, block, now, "fast", replace(plan_from_chain(rt, u), base_fee=10**9)) for u in users]

    assert route_liquidations(dets, after_event=True, send=True) == ["priority"] * 2
    assert liquidations(chain.rpc, chain.market.pool, block) == []  # nothing left the routing process
    with _run(["priority"]):
        (sent,) = _wait_attempt(rt, users[1])
    assert sent.reason != SENT_BY_PRODUCER
    with rt.sessions() as s:
        rows = [(a.outcome, a.reason) for a in attempts_for(s, users[0])]
    assert rows[1:] == [("skipped", "already sent, awaiting its receipt")]
    wait_until(lambda: liquidations(chain.rpc, chain.market.pool, block), 10, "the lane's liquidation")
    assert [e["user"] for e in liquidations(chain.rpc, chain.market.pool, block)] == [users[1]]
