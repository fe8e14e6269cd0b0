"""`make chaos`: a price crash makes 200 borrowers liquidatable while a priority worker is killed
with SIGKILL, Redis restarts and the producer's WebSocket is cut. Afterwards every liquidatable
borrower is liquidated exactly once, the attempts table matches the chain, and nothing stays queued.
Twice: under automine, and on 2 s blocks with the backrun on (the crash is seen pending, and the faults
land while liquidations wait behind it in the pool)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import replace

import pytest
from sqlalchemy import select

from liqbot.devnet import Devnet, Shape, interval_mining, move_price, seed_borrowers
from liqbot.devnet.proxy import CuttableProxy
from liqbot.devnet.stack import DEFAULT_WORKER, PRIORITY_WORKER, Stack
from liqbot.store.db import Attempt, User, session_factory
from liqbot.store.redis import State
from tests.helpers import health_at, liquidations, wait_until
from tests.integration.conftest import reset_caches

pytestmark = pytest.mark.chaos
N = 200


@pytest.mark.parametrize("backrun", [False, True], ids=["automine", "backrun-2s-blocks"])
def test_chaos(chain: Devnet, env: dict, stack: Stack, monkeypatch: pytest.MonkeyPatch, backrun: bool):
    url = stack.redis("redis")
    monkeypatch.setenv("REDIS_URL", url)
    reset_caches()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    sessions = session_factory(env["DATABASE_URL"])
    shape = Shape(collaterals=("WETH",), debts=("USDC",), hf_range=(11_000, 11_800))
    borrowers = [p.address for p in seed_borrowers(chain.market, N, seed=77, shape=shape).borrowers]
    proxy = CuttableProxy(int(chain.market.rpc_url.rsplit(":", 1)[1])).start()
    faults: list[str] = []
    blocks = contextlib.ExitStack()
    try:
        # The victim is slowed after each send, so the SIGKILL lands between a send and its record.
        stack.worker("priority-a", PRIORITY_WORKER, extra_env={"FAULT_PAUSE_AFTER_SEND_SECS": "0.2"})
        stack.worker("priority-b", PRIORITY_WORKER)
        stack.worker("default", DEFAULT_WORKER)
        stack.beat()
        stack.producer(extra_env={"WS_URL": proxy.url, "MEMPOOL_BACKRUN": str(backrun).lower()})

        def stored() -> int:
            with sessions() as s:
                return len(list(s.scalars(select(User.address))))

        wait_until(lambda: stored() >= N, 90, "backfilled borrowers")
        if backrun:
            blocks.enter_context(interval_mining(chain.rpc, 2))
        move = move_price(chain.market, "WETH", pct=-20, wait=not backrun)
        t0 = time.time()

        def inject() -> None:
            time.sleep(0.3)
            stack.stop("priority-a", signal.SIGKILL)
            faults.append(f"+{time.time() - t0:.1f}s SIGKILL priority-a (mid-liquidation)")
            proxy.cut(down_secs=2)
            faults.append(f"+{time.time() - t0:.1f}s cut the producer's WebSocket (2 s down)")
            time.sleep(0.5)
            stack.stop("redis", signal.SIGKILL)
            faults.append(f"+{time.time() - t0:.1f}s Redis killed (no persistence: queues lost)")
            time.sleep(2)
            stack.redis("redis", port=port)
            faults.append(f"+{time.time() - t0:.1f}s Redis back")
            stack.worker("priority-c", PRIORITY_WORKER)
            faults.append(f"+{time.time() - t0:.1f}s priority-c started")

        chaos = threading.Thread(target=inject)
        chaos.start()
        if backrun:
            receipt = wait_until(lambda: chain.rpc.call("eth_getTransactionReceipt", move.tx_hash), 10, "the update mined")
            move = replace(move, block=int(receipt["blockNumber"], 16))
        liquidatable = {u for u, a in health_at(chain.rpc, chain.market.pool, borrowers, move.block).items() if a.liquidatable}
        # backrun: those liquidated right behind the update in its block were liquidatable after it too
        liquidatable |= {e["user"] for e in liquidations(chain.rpc, chain.market.pool, move.block) if e["block"] == move.block}
        assert len(liquidatable) == N
        chaos.join(60)

        def all_done() -> bool:
            return len({e["user"] for e in liquidations(chain.rpc, chain.market.pool, move.block)}) >= N

        wait_until(all_done, 240, f"{N} liquidations", interval=1)
        time.sleep(3)
        events = liquidations(chain.rpc, chain.market.pool, move.block)
        users = [e["user"] for e in events]
        assert sorted(users) == sorted(liquidatable), f"{len(users)} liquidations for {len(set(users))} users"

        def rows() -> list[Attempt]:
            with sessions() as s:
                return list(s.scalars(select(Attempt).where(Attempt.tx_hash.is_not(None))))

        wait_until(lambda: {a.tx_hash for a in rows()} >= {e["tx"] for e in events}, 60, "every liquidation recorded",
                   interval=1)
        wait_until(lambda: all(a.outcome != "sent" for a in rows()), 60, "every receipt recorded", interval=1)
        recorded = rows()
        extra = [(a.user, a.outcome, a.reason, a.path, a.nonce) for a in recorded if a.tx_hash not in {e["tx"] for e in events}]
        assert sorted(a.tx_hash for a in recorded) == sorted(e["tx"] for e in events), \
            f"exactly one row per liquidation; {len(extra)} rows with no LiquidationCall, e.g. {extra[:5]}"
        assert {a.outcome for a in recorded} == {"mined"}
        state = State(url)
        wait_until(lambda: state.queue_depth("priority") == 0 and state.queue_depth("default") == 0, 60, "empty queues",
                   interval=1)
        with sessions() as s:
            all_rows = list(s.scalars(select(Attempt)))
        recovered = sum("recovered" in (a.reason or "") for a in all_rows)
        in_block = sum(e["block"] == move.block for e in events)
        print(f"\nchaos ({'2 s blocks, backrun on' if backrun else 'automine'}) faults:\n  " + "\n  ".join(faults))
        print(f"{in_block} of {len(events)} liquidations in the update's own block {move.block}")
        print(f"{N} liquidatable, {len(events)} liquidations, {len(recorded)} rows with a tx hash "
              f"({recovered} recovered after the kill), {len(all_rows) - len(recorded)} skip/failed rows, lost: 0")
    finally:
        blocks.close()
        proxy.stop()
