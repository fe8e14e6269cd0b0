"""Parked users: a user a liquidation cannot help (bad debt, dust) is attempted once, then left off the
lane by scans and bookkeeping until an event or a price move touches it. Real anvil + Aave, Redis,
an in-process priority worker and the producer's own handling of the real logs; the last test runs
the whole stack as the demo does and reads the priority worker's log."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from celery.contrib.testing.worker import start_worker
from sqlalchemy import select

from liqbot.celery import app
from liqbot.chain import aave
from liqbot.chain.reader import account_data
from liqbot.devnet import Devnet, move_price, seed_borrowers
from liqbot.devnet.stack import DEFAULT_WORKER, PRIORITY_WORKER, Stack
from liqbot.devnet.txs import TxSender
from liqbot.producer.listener import Producer
from liqbot.runtime import Runtime
from liqbot.store.attempts import attempts_for
from liqbot.store.db import Attempt, session_factory
from liqbot.store.redis import State
from liqbot.tasks import positions, scan
from liqbot.tasks.scan import scan_users
from tests.helpers import liquidations, open_position, producer_after_backfill, wait_until

NOTHING_TO_SEIZE = "no seizable collateral or repayable debt"


def _leave_bad_debt(chain: Devnet, who: str = "user4") -> str:
    """A borrower whose every WETH a rival liquidator seized when WETH halved: debt left, no collateral."""
    m = chain.market
    user = open_position(chain, who, weth=10, usdc=15_000)
    move_price(m, "WETH", usd="1000")
    rival, usdc = m.account("user9").address, m.reserve("USDC").address
    tx = TxSender(chain.rpc)
    tx.call(rival, usdc, aave.MINT_TO, rival, 20_000 * 10**6)
    tx.call(rival, usdc, aave.APPROVE, m.pool, aave.UINT256_MAX)
    tx.call(rival, m.pool, aave.LIQUIDATION_CALL, m.reserve("WETH").address, usdc, user, aave.UINT256_MAX, False)
    tx.settle()
    chain.mine()  # the bad debt predates what the bot detects: not a race it lost
    acc = account_data(chain.rpc, m.pool, [user])[user]
    assert acc.collateral_base == 0
    assert acc.liquidatable
    return user


def _dust(chain: Devnet, who: str = "user6") -> str:
    """$20 of WETH against $15 of USDC, then WETH -15%: liquidatable, but hardly worth the gas."""
    m = chain.market
    user = m.account(who).address
    weth, usdc = m.reserve("WETH").address, m.reserve("USDC").address
    tx = TxSender(chain.rpc)
    tx.call(user, weth, aave.MINT_TO, user, 10**16)
    tx.call(user, weth, aave.APPROVE, m.pool, aave.UINT256_MAX)
    tx.call(user, m.pool, aave.SUPPLY, weth, 10**16, user, 0)
    tx.call(user, m.pool, aave.BORROW, usdc, 15 * 10**6, aave.VARIABLE_RATE, 0, user)
    tx.settle()
    move_price(m, "WETH", pct=-15)
    return user


def _deliver(chain: Devnet, producer: Producer, since: int) -> None:
    """What the producer's subscription delivers for the blocks after `since`, handled as it would be."""
    logs = chain.rpc.call("eth_getLogs", {"fromBlock": hex(since + 1), "toBlock": "latest", **producer._log_filter()})
    assert logs
    producer.handle(logs, time.time())
    producer._books.submit(lambda: None).result()


def _head(chain: Devnet) -> int:
    return int(chain.rpc.call("eth_blockNumber"), 16)


def _lane(rt: Runtime, user: str, attempts: int):
    """Let a priority worker take what is queued; returns the user's attempts once there are `attempts`."""

    def recorded():
        with rt.sessions() as s:
            rows = attempts_for(s, user)
        return rows if len(rows) >= attempts else None

    with start_worker(app, pool="solo", queues=["priority"], perform_ping_check=False, loglevel="WARNING",
                      shutdown_timeout=30):
        rows = wait_until(recorded, 30, f"{attempts} attempts for {user}")
        wait_until(lambda: rt.state.queue_depth("priority") == 0, 30, "the lane to empty")
    return rows


def _scan_everything(rt: Runtime, user: str) -> None:
    """Every way but an event that could route the user: both scans and bookkeeping."""
    rt.state.heartbeat("test-priority")  # a live lane: nothing would fall back to the default queue
    rt.state.release(user)  # the dedupe window is not what holds it back
    scan_users([user], "test scan")
    scan.scan_at_risk()
    scan.full_rescan()
    assert positions.update_position(user) is True  # still liquidatable...
    assert rt.state.queue_depth("priority") == 0  # ...and not routed


@pytest.mark.aave("3.0")  # v3.3+ burns the debt a full seizure leaves: no bad debt to build
def test_a_bad_debt_user_is_attempted_once_then_not_again_until_something_changes(chain: Devnet, rt: Runtime):
    m = chain.market
    user = _leave_bad_debt(chain)
    producer = producer_after_backfill(chain, rt)
    rt.state.heartbeat("test-priority")

    assert scan_users([user], "test scan") == 1
    assert rt.state.queue_depth("priority") == 1
    (first,) = _lane(rt, user, 1)
    assert (first.outcome, first.reason) == ("skipped", NOTHING_TO_SEIZE)
    assert rt.state.parked_among([user]) == {user}
    count, shown = rt.state.parked()
    assert count == 1
    assert shown[0][:2] == (user, NOTHING_TO_SEIZE)

    _scan_everything(rt, user)

    # The price of its debt moves: nothing it holds could be seized at any price, it stays parked.
    since = _head(chain)
    move_price(m, "USDC", pct=1)
    rt.state.heartbeat("test-priority")
    _deliver(chain, producer, since)
    assert rt.state.parked_among([user]) == {user}
    _scan_everything(rt, user)

    # It supplies collateral again: the event unparks it and the fast path routes it at once.
    since = _head(chain)
    weth = m.reserve("WETH").address
    tx = TxSender(chain.rpc)
    tx.call(user, weth, aave.MINT_TO, user, 10**18)
    tx.call(user, m.pool, aave.SUPPLY, weth, 10**18, user, 0)
    tx.settle()
    rt.state.heartbeat("test-priority")
    _deliver(chain, producer, since)
    assert rt.state.parked_among([user]) == set()
    assert rt.state.queue_depth("priority") == 1
    rows = _lane(rt, user, 2)
    assert rows[1].outcome == "sent", rows[1].reason
    wait_until(lambda: liquidations(chain.rpc, m.pool, since), 10, "the liquidation's block")
    assert [e["user"] for e in liquidations(chain.rpc, m.pool, since)] == [user]
    with rt.sessions() as s:
        assert len(attempts_for(s, user)) == 2


def test_a_price_move_unparks_a_dust_user_once(chain: Devnet, env: dict, monkeypatch: pytest.MonkeyPatch):
    from liqbot.runtime import runtime
    from tests.integration.conftest import reset_caches

    monkeypatch.setenv("MIN_PROFIT_BASE", str(100 * 10**8))  # below 100 USD is dust, whatever the gas costs
    reset_caches()
    rt = runtime()
    m = chain.market
    user = _dust(chain)
    producer = producer_after_backfill(chain, rt)
    rt.state.heartbeat("test-priority")
    assert scan_users([user], "test scan") == 1
    (first,) = _lane(rt, user, 1)
    assert (first.outcome, first.reason) == ("skipped", "unprofitable")
    assert rt.state.parked_among([user]) == {user}
    _scan_everything(rt, user)

    since = _head(chain)
    move_price(m, "WETH", pct=-1)  # its collateral's price: the profit may have changed
    rt.state.heartbeat("test-priority")
    _deliver(chain, producer, since)
    assert rt.state.parked_among([user]) == set()
    assert rt.state.queue_depth("priority") == 1
    rows = _lane(rt, user, 2)
    assert (rows[1].outcome, rows[1].reason) == ("skipped", "unprofitable")
    assert rt.state.parked_among([user]) == {user}  # checked once, parked again
    _scan_everything(rt, user)


def test_without_the_fast_path_the_producer_unparks_before_bookkeeping_routes(chain: Devnet, rt: Runtime):
    user = _dust(chain)
    producer = producer_after_backfill(chain, rt, fast_path=False)
    rt.state.park({user: "unprofitable"})
    _scan_everything(rt, user)

    since = _head(chain)
    move_price(chain.market, "WETH", pct=-1)
    _deliver(chain, producer, since)
    assert rt.state.parked_among([user]) == set()
    assert rt.state.queue_depth("priority") == 0  # no detection on the producer without the fast path
    rt.state.heartbeat("test-priority")
    assert positions.update_position(user) is True  # bookkeeping, published by the producer, now routes it
    assert rt.state.queue_depth("priority") == 1


def test_status_and_metrics_show_parked_users(rt: Runtime):
    from liqbot.cli.status import gather
    from liqbot.metrics import LiqbotCollector

    users = ["0x" + f"{i + 1:040x}" for i in range(3)]
    rt.state.park(dict.fromkeys(users, "unprofitable"))
    assert rt.state.unpark(users[:1]) == 1
    info = gather()
    assert info["parked"]["count"] == 2
    assert {p["user"] for p in info["parked"]["users"]} == set(users[1:])
    assert {p["reason"] for p in info["parked"]["users"]} == {"unprofitable"}
    (gauge,) = [f for f in LiqbotCollector().collect() if f.name == "liqbot_parked_users"]
    assert gauge.samples[0].value == 2


SKIP_LINE = re.compile(r"skipped user=(0x[0-9a-fA-F]{40}) block=\d+: (.*)$", re.M)


@pytest.mark.aave("3.0")  # v3.3+ burns the debt a full seizure leaves: no bad debt to build
@pytest.mark.e2e
def test_the_demo_stack_does_not_retry_bad_debt(chain: Devnet, env: dict, stack: Stack):
    """As in the demo: borrowers, a crash that leaves some of them with bad debt after their
    liquidation, and the at-risk scan running every second: each parked user is skipped once."""
    borrowers = [p.address for p in seed_borrowers(chain.market, 40, seed=31).borrowers]
    stack.worker("priority", PRIORITY_WORKER)
    default = stack.worker("default", DEFAULT_WORKER)
    stack.beat()
    stack.producer()
    move = move_price(chain.market, "WETH", pct=-45)
    state = State(env["REDIS_URL"])

    def settled() -> set[str] | None:
        """Every borrower the crash made liquidatable liquidated, and every one still liquidatable
        (bad debt, dust) parked; returns those left with bad debt."""
        liquidated = {e["user"] for e in liquidations(chain.rpc, chain.market.pool, move.block)}
        left = {u: a for u, a in account_data(chain.rpc, chain.market.pool, borrowers).items() if a.liquidatable}
        stuck = {u for u, a in left.items() if a.collateral_base == 0}
        done = stuck and set(left) <= liquidated and state.parked_among(sorted(left)) == set(left)
        return stuck if done else None

    stuck = wait_until(settled, 120, "liquidations, then the bad debt parked")
    scans = len(re.findall("at-risk scan:", default.text()))
    wait_until(lambda: len(re.findall("at-risk scan:", default.text())) >= scans + 5, 60, "five more at-risk scans")

    skips = Counter((u, why) for u, why in SKIP_LINE.findall(stack.procs["priority"].text()))
    assert {u for u, why in skips if why == NOTHING_TO_SEIZE} == stuck
    repeated = {k: n for k, n in skips.items() if n > 1 and k[1] in (NOTHING_TO_SEIZE, "unprofitable")}
    assert not repeated, repeated
    with session_factory(env["DATABASE_URL"])() as s:
        rows = list(s.scalars(select(Attempt).where(Attempt.reason == NOTHING_TO_SEIZE)))
    assert Counter(a.user for a in rows) == Counter(dict.fromkeys(stuck, 1))
