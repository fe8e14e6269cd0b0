"""End to end, as users run it: real anvil with Aave, real Redis, `celery -A liqbot worker` / `beat`
processes and `liqbot producer`. A collateral price falls 30%; every borrower that became
liquidatable must be liquidated on chain, and no healthy one touched."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from liqbot.devnet import Devnet, move_price, seed_borrowers
from liqbot.devnet.stack import DEFAULT_WORKER, PRIORITY_WORKER, Stack
from liqbot.store.db import Attempt, User, session_factory
from tests.helpers import health_at, liquidations, wait_until

pytestmark = pytest.mark.e2e


def _attempts(env: dict) -> list[Attempt]:
    with session_factory(env["DATABASE_URL"])() as s:
        return list(s.scalars(select(Attempt).order_by(Attempt.id)))


def _users_in_db(env: dict) -> int:
    with session_factory(env["DATABASE_URL"])() as s:
        return len(list(s.scalars(select(User.address))))


def _crash_and_check(chain: Devnet, env: dict, borrowers: list[str]) -> tuple[set[str], list[Attempt]]:
    move = move_price(chain.market, "WETH", pct=-30)
    after = health_at(chain.rpc, chain.market.pool, borrowers, move.block)
    liquidatable = {u for u, acc in after.items() if acc.liquidatable}
    assert len(liquidatable) >= 5, "the scenario needs liquidatable borrowers"

    def all_liquidated() -> bool:
        return {e["user"] for e in liquidations(chain.rpc, chain.market.pool, move.block)} >= liquidatable

    wait_until(all_liquidated, 90, f"{len(liquidatable)} liquidations")
    events = liquidations(chain.rpc, chain.market.pool, move.block)
    assert {e["user"] for e in events} == liquidatable, "a healthy borrower was liquidated"
    ours = chain.market.account("liquidator").address
    assert all(e["liquidator"] == ours for e in events)
    wait_until(lambda: {a.tx_hash for a in _attempts(env) if a.tx_hash} >= {e["tx"] for e in events}, 30,
               "every liquidation recorded")
    return liquidatable, _attempts(env)


def _first_sent(attempts: list[Attempt]) -> dict[str, Attempt]:
    first: dict[str, Attempt] = {}
    for a in attempts:
        if a.tx_hash and a.user not in first:
            first[a.user] = a
    return first


def _report(label: str, first: dict[str, Attempt]) -> None:
    lat = sorted(a.latency_ms for a in first.values())
    print(f"\n{label}: detection->send over {len(lat)} liquidations: min {lat[0]:.1f} ms, "
          f"median {statistics.median(lat):.1f} ms, max {lat[-1]:.1f} ms")


@pytest.mark.aave
def test_fast_path_liquidates_every_liquidatable_borrower(chain: Devnet, env: dict, stack: Stack):
    borrowers = [p.address for p in seed_borrowers(chain.market, 50, seed=21).borrowers]
    stack.worker("priority", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER)
    # Start with the fast path off in the environment and switch it on live, as an operator would.
    producer = stack.producer(extra_env={"WS_FAST_PATH": "false"})
    wait_until(lambda: _users_in_db(env) >= 50, 60, "backfilled borrowers in the store")
    flip = subprocess.run([sys.executable, "-m", "liqbot", "config", "set", "ws-fast-path", "true"],
                          capture_output=True, text=True, env={**stack.env}, check=False, cwd=stack.cwd)
    assert flip.returncode == 0, flip.stderr
    wait_until(lambda: "fast path switched on" in producer.text(), 5, "the producer to follow the flag")

    liquidatable, attempts = _crash_and_check(chain, env, borrowers)
    first = _first_sent(attempts)
    assert set(first) == liquidatable
    assert {a.path for a in first.values()} == {"fast"}
    assert all(a.detected_block > 0 and a.latency_ms > 0 for a in first.values())
    assert "⚡ liquidation sent" in stack.procs["priority"].text()
    assert "fast path (mirror)" in producer.text()  # health from memory, each user routed with its plan
    _report("fast path", first)


def test_without_fast_path_the_scanner_and_update_position_liquidate_everyone(chain: Devnet, env: dict, stack: Stack):
    borrowers = [p.address for p in seed_borrowers(chain.market, 50, seed=22).borrowers]
    stack.worker("priority", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER)
    stack.beat()
    stack.producer(extra_env={"WS_FAST_PATH": "false"})
    wait_until(lambda: _users_in_db(env) >= 50, 60, "backfilled borrowers in the store")

    liquidatable, attempts = _crash_and_check(chain, env, borrowers)
    first = _first_sent(attempts)
    assert set(first) == liquidatable
    assert "fast" not in {a.path for a in attempts}
    assert {a.path for a in first.values()} <= {"scan", "update"}
    _report("scanner / update_position", first)


def test_a_swapped_price_source_is_followed(chain: Devnet, env: dict, stack: Stack):
    """AssetSourceUpdated: the producer re-reads the market and subscribes to the new feed."""
    borrowers = [p.address for p in seed_borrowers(chain.market, 30, seed=23).borrowers]
    stack.worker("priority", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER)
    producer = stack.producer()
    wait_until(lambda: _users_in_db(env) >= 30, 60, "backfilled borrowers in the store")
    swap = move_price(chain.market, "WBTC", pct=0.0001, swap_source=True)
    wait_until(lambda: "price sources changed" in producer.text(), 10, "the producer to resubscribe")
    time.sleep(0.5)
    move = move_price(chain.market, "WBTC", pct=-40)  # AnswerUpdated from the new feed only
    assert move.feed == swap.feed
    after = health_at(chain.rpc, chain.market.pool, borrowers, move.block)
    liquidatable = {u for u, acc in after.items() if acc.liquidatable}
    assert liquidatable

    def done() -> bool:
        return {e["user"] for e in liquidations(chain.rpc, chain.market.pool, move.block)} >= liquidatable

    wait_until(done, 60, "liquidations after the new feed moved")
    # Mined on send under automine: the worker's rows follow a moment later.
    first = wait_until(lambda: (f := _first_sent(_attempts(env))) and set(f) >= liquidatable and f, 10, "the attempt rows")
    assert {first[u].path for u in liquidatable} == {"fast"}
