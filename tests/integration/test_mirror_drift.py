"""The producer compares its mirror with the chain (at the full rescan's interval): every followed user's
(collateral, debt, threshold, HF) against `getUserAccountData` at the mirror's block. On the devnet the
drift is 0 after events, a price move and a month of interest; a wrong mirror is counted and each
drifting user logged with both values, for `liqbot status` and the metrics."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import pytest

from liqbot.devnet import Devnet, move_price
from liqbot.mirror.audit import snapshot
from liqbot.runtime import Runtime
from tests.helpers import mirror_producer, open_position, producer_after_backfill

pytestmark = pytest.mark.aave()


def _follow(chain: Devnet, producer, since: int) -> None:
    """Hand the producer the mirror's logs after `since`, as its subscription would."""
    flt = producer.mirror.log_filter()
    logs = chain.rpc.call("eth_getLogs", {**flt, "fromBlock": hex(since + 1), "toBlock": "latest"})
    producer.handle(logs, time.time())


def test_the_mirror_audit_finds_no_drift_and_names_what_differs(chain: Devnet, rt: Runtime, caplog):
    users = [open_position(chain, "user4", weth=10, usdc=12_000), open_position(chain, "user5", weth=3, wbtc=1, usdc=20_000)]
    producer = producer_after_backfill(chain, rt, fast_path=False)
    producer.known |= set(users)
    loaded_at = int(chain.rpc.call("eth_blockNumber"), 16)
    producer.load_mirror(loaded_at)
    assert producer.mirror is not None

    chain.increase_time(30 * 24 * 3600)
    open_position(chain, "user6", weth=2, usdc=1_000)  # a new borrower the mirror follows from its Supply
    moved = move_price(chain.market, "WETH", pct=-7).block
    _follow(chain, producer, loaded_at)
    clean = producer.audit_mirror(snapshot(producer.mirror.mirror))
    assert clean.block == moved
    followed = producer.mirror.mirror.users.keys()
    assert set(users) < followed
    assert len(followed) == len(users) + 2
    assert clean.compared == len(followed)
    assert clean.drift == []
    assert clean.skipped == 0
    assert rt.state.mirror_audit()["drift"] == "0"

    wrong = snapshot(producer.mirror.mirror)
    st = wrong.users[users[0]]
    wrong.users[users[0]] = replace(st, scaled_debt=tuple(d + 10**9 if d else 0 for d in st.scaled_debt))
    with caplog.at_level(logging.WARNING, logger="liqbot.producer.listener"):
        found = producer.audit_mirror(wrong)
    assert [d.user for d in found.drift] == [users[0]]
    line = next(r.getMessage() for r in caplog.records if users[0] in r.getMessage())
    assert "debt_base: mirror" in line
    assert "chain" in line
    assert rt.state.mirror_audit()["drift"] == "1"

    from liqbot.cli.status import gather

    assert gather()["mirror"]["drift"] == "1"
    assert producer.mirror.account(users[0]) == found.drift[0].chain  # the live mirror was not touched


def test_a_reconnect_moves_the_kept_mirror_through_the_gap_and_routes_what_it_made_liquidatable(chain: Devnet, rt: Runtime):
    safe = open_position(chain, "user4", weth=10, usdc=9_000)
    risky = open_position(chain, "user5", weth=10, usdc=15_500)
    producer = mirror_producer(chain, rt, [safe, risky])
    kept = producer.mirror
    producer.cursor = kept.block
    producer.reconnects = 1

    chain.increase_time(7 * 24 * 3600)  # the gap: time, a new borrower, a price move
    open_position(chain, "user6", weth=2, usdc=1_000)
    moved = move_price(chain.market, "WETH", pct=-8).block
    head = int(chain.rpc.call("eth_blockNumber"), 16)
    producer.backfill(head, live=True)

    assert producer.mirror is kept  # moved through the gap, not loaded again
    assert kept.block >= moved
    assert producer.audit_mirror(snapshot(kept.mirror)).drift == []
    assert rt.state.r.exists(rt.state.key("dedupe", risky))  # routed to the lane from the gap's price move
    assert not rt.state.r.exists(rt.state.key("dedupe", safe))
