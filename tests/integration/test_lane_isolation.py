"""A backlog on the default queue must not hold up the priority lane (real worker processes)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from liqbot.devnet import Devnet, seed_borrowers
from liqbot.devnet.stack import DEFAULT_WORKER, PRIORITY_WORKER, Stack
from liqbot.runtime import Runtime
from liqbot.store.attempts import attempts_for
from liqbot.store.db import User
from liqbot.tasks import positions
from liqbot.tasks.routing import Detection, route_liquidation
from tests.helpers import liquidations, make_liquidatable_borrower, wait_until

pytestmark = pytest.mark.e2e
BACKLOG = 1000


def test_a_default_backlog_does_not_delay_a_liquidation(chain: Devnet, rt: Runtime, stack: Stack):
    user = make_liquidatable_borrower(chain)
    healthy = [p.address for p in seed_borrowers(chain.market, 20, seed=5).borrowers]  # at the new prices
    start = int(chain.rpc.call("eth_blockNumber"), 16)
    stack.worker("priority", PRIORITY_WORKER)
    stack.worker("default", DEFAULT_WORKER, "-c", "1")

    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0
    for i in range(BACKLOG):
        positions.update_position.apply_async((healthy[i % len(healthy)], i), queue="default")
    wait_until(lambda: rt.state.queue_depth("default") < BACKLOG, 30, "the default worker to start on the backlog")

    route_liquidation(Detection(user, start, time.time(), "fast"))

    def sent():
        with rt.sessions() as s:
            return [a for a in attempts_for(s, user) if a.tx_hash]

    attempt = wait_until(sent, 60, "the liquidation", interval=0.01)[0]
    waiting = rt.state.queue_depth("default")
    assert waiting > BACKLOG // 2, f"only {waiting} bookkeeping tasks were left when the liquidation ran"
    assert attempt.path == "fast"
    assert [e["user"] for e in liquidations(chain.rpc, chain.market.pool, start)] == [user]

    # ...and the backlog then completes: the liquidation started before the last bookkeeping task ran.
    wait_until(lambda: rt.state.queue_depth("default") == 0, 300, "the backlog to drain", interval=0.5)
    time.sleep(1)
    with rt.sessions() as s:
        last_update = s.scalar(select(func.max(User.updated_at)))
        assert s.scalar(select(func.count()).select_from(User)) == len(healthy)
    assert attempt.started_at < last_update
