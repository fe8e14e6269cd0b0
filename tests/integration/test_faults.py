"""Faults the bot must survive, on real processes: a dropped WebSocket, a Redis restart, a worker
killed with SIGKILL mid-liquidation, a dead RPC, a chain reorganisation, a dead active producer or
beat. Nothing is lost and nobody is liquidated twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from liqbot.devnet import Devnet, Shape, move_price, seed_borrowers
from liqbot.devnet.proxy import CuttableProxy
from liqbot.devnet.stack import DEFAULT_WORKER, PRIORITY_WORKER, Stack
from liqbot.store.db import Attempt, User, session_factory
from tests.helpers import health_at, liquidations, open_position, wait_until
from tests.integration.conftest import reset_caches

pytestmark = pytest.mark.e2e
SHAPE = Shape(collaterals=("WETH",), debts=("USDC",), hf_range=(11_000, 11_800))  # -20% WETH: all below 0.95


@pytest.fixture
def own_redis(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> str:
    """A redis-server only this test uses, so it can be killed and restarted."""
    url = stack.redis("redis")
    monkeypatch.setenv("REDIS_URL", url)
    reset_caches()
    from liqbot.celery import app

    app.conf.broker_url = url
    return url


def _attempts(env: dict) -> list[Attempt]:
    with session_factory(env["DATABASE_URL"])() as s:
        return list(s.scalars(select(Attempt).order_by(Attempt.id)))


def _stored_users(env: dict) -> int:
    with session_factory(env["DATABASE_URL"])() as s:
        return len(list(s.scalars(select(User.address))))


def _exactly_once(chain: Devnet, env: dict, users: set[str], since: int, timeout: float = 90) -> list[dict]:
    """Every user liquidated exactly once, and the attempts table matches the chain."""
    def done() -> bool:
        return {e["user"] for e in liquidations(chain.rpc, chain.market.pool, since)} >= users
    wait_until(done, timeout, f"{len(users)} liquidations")
    time.sleep(1.5)  # anything that would liquidate twice has had its chance
    events = liquidations(chain.rpc, chain.market.pool, since)
    assert sorted(e["user"] for e in events) == sorted(users)
    wait_until(lambda: {a.tx_hash for a in _attempts(env) if a.tx_hash} >= {e["tx"] for e in events}, 30,
               "every liquidation recorded")
    rows = [a for a in _attempts(env) if a.tx_hash]
    assert sorted(a.tx_hash for a in rows) == sorted(e["tx"] for e in events)  # one row per tx, no stray hash
    return events


def _crash(chain: Devnet, borrowers: list[str], pct: float = -20) -> tuple[int, set[str]]:
    move = move_price(chain.market, "WETH", pct=pct)
    after = health_at(chain.rpc, chain.market.pool, borrowers, move.block)
    return move.block, {u for u, a in after.items() if a.liquidatable}


def test_websocket_drop_reconnects_and_backfills_the_gap(chain: Devnet, env: dict, stack: Stack):
    borrowers = [p.address for p in seed_borrowers(chain.market, 20, seed=41, shape=SHAPE).borrowers]
    proxy = CuttableProxy(int(chain.market.rpc_url.rsplit(":", 1)[1])).start()
    try:
        stack.worker("priority", PRIORITY_WORKER)
        stack.worker("default", DEFAULT_WORKER)
        producer = stack.producer(extra_env={"WS_URL": proxy.url})
        wait_until(lambda: _stored_users(env) >= 20, 60, "backfill")
        proxy.cut(down_secs=3)  # the line is down while the price crashes
        wait_until(lambda: "connection lost" in producer.text(), 10, "the producer to notice")
        since, liquidatable = _crash(chain, borrowers)
        assert len(liquidatable) == 20
        status = subprocess.run([sys.executable, "-m", "liqbot", "status"], capture_output=True, text=True,
                                env=stack.env, cwd=stack.cwd, check=False, timeout=60)
        assert "producer: reconnecting" in status.stdout, status.stdout + status.stderr
        _exactly_once(chain, env, liquidatable, since)
        assert producer.text().count("producer live") >= 2
        first = {a.user: a for a in reversed(_attempts(env)) if a.tx_hash}
        assert {a.path for a in first.values()} == {"fast"}  # the gap went through the fast path on reconnect
    finally:
        proxy.stop()


def test_redis_restart_loses_nothing(chain: Devnet, env: dict, stack: Stack, own_redis: str):
    borrowers = [p.address for p in seed_borrowers(chain.market, 20, seed=42, shape=SHAPE).borrowers]
    stack.worker("priority", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER)
    stack.beat()
    producer = stack.producer()
    wait_until(lambda: _stored_users(env) >= 20, 60, "backfill")
    port = int(own_redis.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    stack.stop("redis", signal.SIGKILL)
    since, liquidatable = _crash(chain, borrowers)  # seen by the producer while Redis is down
    wait_until(lambda: "buffered" in producer.text(), 20, "the producer to buffer")
    time.sleep(2)
    stack.redis("redis", port=port)  # back, empty (no persistence): the buffer and the rescan refill it
    _exactly_once(chain, env, liquidatable, since, timeout=120)
    for name in ("priority", "default", "beat", "producer"):
        assert stack.procs[name].alive(), f"{name} died with Redis"


def test_a_worker_killed_mid_liquidation_leaves_exactly_one_liquidation_and_one_row(chain: Devnet, env: dict,
                                                                                    stack: Stack):
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    slow = stack.worker("priority", PRIORITY_WORKER, extra_env={"FAULT_PAUSE_AFTER_SEND_SECS": "30"})
    stack.worker("default", DEFAULT_WORKER)
    stack.beat()
    stack.producer(extra_env={"PRODUCER_SENDS": "false"})  # the worker sends (see the next test for the producer)
    wait_until(lambda: _stored_users(env) >= 1, 60, "backfill")
    since, liquidatable = _crash(chain, [user])
    assert liquidatable == {user}
    wait_until(lambda: liquidations(chain.rpc, chain.market.pool, since), 30, "the transaction on chain")
    assert _attempts(env) == []  # sent, not recorded yet: now kill it
    stack.stop("priority", signal.SIGKILL)
    assert not slow.alive()
    stack.worker("priority2", PRIORITY_WORKER)
    events = _exactly_once(chain, env, {user}, since, timeout=60)
    (row,) = [a for a in _attempts(env) if a.tx_hash]
    assert row.tx_hash == events[0]["tx"]
    assert row.outcome == "mined"
    assert "recovered" in (row.reason or "")


def test_a_producer_killed_right_after_its_send_leaves_exactly_one_liquidation_and_one_row(chain: Devnet, env: dict,
                                                                                           stack: Stack):
    """PRODUCER_SENDS: killed after the bytes left and before the task that records them was published, the
    producer leaves its intent in Redis; the in-flight sweep records the liquidation once."""
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    stack.worker("priority", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER)
    stack.beat()
    producer = stack.producer(extra_env={"FAULT_PAUSE_AFTER_SEND_SECS": "30"})
    wait_until(lambda: _stored_users(env) >= 1, 60, "backfill")
    since, liquidatable = _crash(chain, [user])
    assert liquidatable == {user}
    wait_until(lambda: liquidations(chain.rpc, chain.market.pool, since), 30, "the producer's transaction on chain")
    assert _attempts(env) == []
    stack.stop("producer", signal.SIGKILL)
    assert not producer.alive()
    events = _exactly_once(chain, env, {user}, since, timeout=60)
    (row,) = [a for a in _attempts(env) if a.tx_hash]
    assert (row.tx_hash, row.outcome) == (events[0]["tx"], "mined")
    assert "recovered" in (row.reason or "")


def test_a_dead_rpc_fails_cleanly_and_trips_the_breaker(chain: Devnet, env: dict, monkeypatch: pytest.MonkeyPatch):
    from liqbot.devnet.anvil import free_port
    from liqbot.execution import run_and_record
    from liqbot.runtime import runtime

    user = open_position(chain, "user4", weth=10, usdc=15_000)
    move_price(chain.market, "WETH", pct=-10)
    rt = runtime()
    _ = rt.market  # discovered while the node answered
    monkeypatch.setenv("RPC_URL", f"http://127.0.0.1:{free_port()}")
    reset_caches()
    rt2 = runtime()
    rt2._market, rt2._market_at = rt.market, time.monotonic()
    rt2._chain_id = 31337
    outcomes = []
    for _ in range(4):
        now = time.time()
        result = run_and_record(rt2, {"user": user, "path": "scan", "detected_block": 1, "detected_at": now,
                                      "started_at": now}, "⚡")
        outcomes.append((result.outcome, result.reason.split(":")[0]))
    assert outcomes[:3] == [("failed", "RpcUnavailable")] * 3
    assert outcomes[3] == ("skipped", "breaker open (3 consecutive failed liquidations (last")
    assert rt2.breaker.state().state == "open"


def test_a_reorg_that_removes_our_liquidation_is_corrected(chain: Devnet, env: dict, stack: Stack):
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    stack.worker("priority", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER)
    stack.beat()
    stack.producer(extra_env={"RECEIPT_TIMEOUT_SECS": "3", "LIQUIDATION_MAX_AGE_SECS": "5"})
    wait_until(lambda: _stored_users(env) >= 1, 60, "backfill")
    since, _ = _crash(chain, [user])
    first = wait_until(lambda: [a for a in _attempts(env) if a.outcome == "mined"], 30, "the first liquidation mined")[0]
    head = int(chain.rpc.call("eth_blockNumber"), 16)
    chain.rpc.call("anvil_reorg", head - first.mined_block + 1, [])  # the liquidation's block is gone
    assert chain.rpc.call("eth_getTransactionReceipt", first.tx_hash) is None
    chain.mine()
    wait_until(lambda: "reorg detected" in stack.procs["producer"].text(), 20, "the producer to see the reorg")
    # The user is liquidatable again and is liquidated again, once, on the new chain.
    events = wait_until(lambda: liquidations(chain.rpc, chain.market.pool, since), 60, "a liquidation on the new chain")
    assert [e["user"] for e in events] == [user]

    def corrected() -> bool:
        old = next(a for a in _attempts(env) if a.id == first.id)
        return old.outcome in ("replaced", "dropped") and old.tx_hash is None
    wait_until(corrected, 60, "the void attempt to be corrected")
    rows = [a for a in _attempts(env) if a.tx_hash]
    assert [a.tx_hash for a in rows] == [events[0]["tx"]]


def test_a_standby_producer_takes_over(chain: Devnet, env: dict, stack: Stack):
    borrowers = [p.address for p in seed_borrowers(chain.market, 10, seed=43, shape=SHAPE).borrowers]
    stack.worker("priority", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER)
    active = stack.producer("producer-a")
    standby = stack.producer("producer-b", wait=False)
    time.sleep(2)
    assert "producer live" not in standby.text()  # no double work while the active one lives
    stack.stop("producer-a", signal.SIGKILL)
    assert not active.alive()
    wait_until(lambda: "producer live" in standby.text(), 15, "the standby to take over")
    since, liquidatable = _crash(chain, borrowers)
    _exactly_once(chain, env, liquidatable, since)


def test_a_standby_beat_takes_over(env: dict, stack: Stack):
    a = stack.beat("beat-a")
    wait_until(lambda: "active scheduler" in a.text(), 20, "the first beat to lead")
    b = stack.beat("beat-b")
    wait_until(lambda: "standby" in b.text(), 20, "the second beat to stand by")  # its start-up alone may take seconds
    assert "active scheduler" not in b.text()
    stack.stop("beat-a", signal.SIGKILL)
    wait_until(lambda: "active scheduler" in b.text(), 15, "the standby beat to take over")


def test_the_private_key_never_leaks(chain: Devnet, env: dict, stack: Stack, own_redis: str, tmp_path: Path):
    key = chain.market.account("liquidator").private_key
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    stack.worker("priority", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER)
    stack.beat()
    stack.producer()
    wait_until(lambda: _stored_users(env) >= 1, 60, "backfill")
    since, _ = _crash(chain, [user])
    _exactly_once(chain, env, {user}, since)
    bad = subprocess.run([sys.executable, "-m", "celery", "-A", "liqbot", "worker", "-Q", "priority"], capture_output=True,
                         text=True, env={**stack.env, "LIQUIDATOR_PRIVATE_KEY": key[:-2] + "zz"}, timeout=60, check=False)
    shown = subprocess.run([sys.executable, "-m", "liqbot", "config"], capture_output=True, text=True, env=stack.env,
                           cwd=stack.cwd, timeout=60, check=False)
    import redis

    r = redis.Redis.from_url(own_redis, decode_responses=True)
    dump = []
    for k in r.scan_iter(count=1000):
        kind = r.type(k)
        value = (r.get(k) if kind == "string" else r.hgetall(k) if kind == "hash" else r.lrange(k, 0, -1) if kind == "list"
                 else sorted(r.smembers(k)) if kind == "set" else r.zrange(k, 0, -1) if kind == "zset" else None)
        dump += [k, json.dumps(value)]
    outputs = [p.text() for p in stack.procs.values()] + [bad.stdout, bad.stderr, shown.stdout, shown.stderr, *dump]
    raw = key.removeprefix("0x").lower()
    assert "liquidator_private_key" in shown.stdout.lower()
    for text in outputs:
        assert raw not in text.lower()
        assert raw[:-2] not in text.lower()


def test_a_redis_password_works(chain: Devnet, env: dict, stack: Stack, monkeypatch: pytest.MonkeyPatch):
    url = stack.redis("redis-auth", password="s3cret-pw")
    monkeypatch.setenv("REDIS_URL", url)
    reset_caches()
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    stack.worker("priority", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER)
    stack.producer()
    wait_until(lambda: _stored_users(env) >= 1, 60, "backfill")
    since, _ = _crash(chain, [user])
    _exactly_once(chain, env, {user}, since)
    shown = subprocess.run([sys.executable, "-m", "liqbot", "config"], capture_output=True, text=True, env=stack.env,
                           cwd=stack.cwd, timeout=60, check=False)
    assert "s3cret-pw" not in shown.stdout
