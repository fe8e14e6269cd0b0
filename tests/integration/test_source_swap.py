"""A price source swap (AssetSourceUpdated) is checked at once: the exposed users' health is read and
the liquidatable ones routed before the producer re-reads the market. The order of the producer's
RPC calls and routing is recorded; nothing is timed."""

from __future__ import annotations

import time

import pytest

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.devnet import Devnet, move_price
from liqbot.producer import listener
from liqbot.producer.listener import Producer
from liqbot.runtime import Runtime
from tests.helpers import open_position, producer_after_backfill

HEALTH = "0x" + aave.GET_USER_ACCOUNT_DATA.selector.hex()


def _label(method: str, params) -> str:
    """A health read, or any other read of the market."""
    if method == "eth_call" and str(params[0].get("data", "")).startswith(HEALTH):
        return "health"
    return f"read {method}"


@pytest.fixture
def record(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every RPC call of this process and every routing by the producer, in order."""
    seen: list[str] = []
    call, batch, route = Rpc.call, Rpc.batch, listener.route_liquidations

    def recording_call(self, method, *params):
        seen.append(_label(method, params))
        return call(self, method, *params)

    def recording_batch(self, calls, **kw):
        calls = list(calls)
        seen.extend(_label(m, p) for m, p in calls)
        return batch(self, calls, **kw)

    def recording_route(dets, *args, **kw):
        seen.append("route")
        return route(dets, *args, **kw)

    monkeypatch.setattr(Rpc, "call", recording_call)
    monkeypatch.setattr(Rpc, "batch", recording_batch)
    monkeypatch.setattr(listener, "route_liquidations", recording_route)
    return seen


def _swap(chain: Devnet, producer: Producer, pct: int) -> tuple[list[dict], str]:
    """Swap WETH's source to a feed at `pct`; returns the logs the producer's subscription delivers."""
    before = int(chain.rpc.call("eth_blockNumber"), 16)
    move = move_price(chain.market, "WETH", pct=pct, swap_source=True)
    logs = chain.rpc.call("eth_getLogs", {"fromBlock": hex(before + 1), "toBlock": hex(move.block),
                                          **producer._log_filter()})
    assert [lg["topics"][0] for lg in logs] == [aave.ASSET_SOURCE_UPDATED_EVENT.topic0]
    return logs, move.feed


def test_a_source_swap_is_checked_before_the_market_is_read_again(chain: Devnet, rt: Runtime, record: list[str]):
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    rt.state.heartbeat("test-priority")
    producer = producer_after_backfill(chain, rt, fast_path=True)
    logs, feed = _swap(chain, producer, pct=-10)
    record.clear()

    producer.handle(logs, time.time())

    first_other = next(i for i, what in enumerate(record) if what not in ("health", "route"))
    assert record[0] == "health", record
    assert "route" in record[:first_other], record  # routed before any other read of the market
    assert rt.state.queue_depth("priority") == 1
    # ...and the market was re-read afterwards: the new feed is known and will be subscribed to.
    weth = chain.market.reserve("WETH").address
    assert producer.market.by_asset[weth].source == feed
    assert feed in producer._log_filter()["address"]
    assert producer.resubscribe
    assert user in producer.index[weth]


def test_without_the_fast_path_a_source_swap_only_refreshes_the_market(chain: Devnet, rt: Runtime, record: list[str]):
    user = open_position(chain, "user4", weth=10, usdc=15_000)
    rt.state.heartbeat("test-priority")
    producer = producer_after_backfill(chain, rt, fast_path=False)
    logs, feed = _swap(chain, producer, pct=-10)
    default_before = rt.state.queue_depth("default")
    record.clear()

    producer.handle(logs, time.time())
    producer._books.submit(lambda: None).result()

    assert "health" not in record
    assert "route" not in record
    assert rt.state.queue_depth("priority") == 0
    weth = chain.market.reserve("WETH").address
    # update_position for every user exposed to WETH: how liquidations are found without the fast path
    assert rt.state.queue_depth("default") == default_before + len(producer.index[weth])
    assert user in producer.index[weth]
    assert producer.market.by_asset[weth].source == feed
    assert producer.resubscribe
