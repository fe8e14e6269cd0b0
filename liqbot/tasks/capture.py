"""The capture audit (default queue, beat): every LiquidationCall on the market, classified ours or lost
and why (liqbot.domain.capture), stored with its bonus value at the block's prices.

It only looks at events SETTLE_BLOCKS old whose user has nothing of ours still in flight: our attempt
rows follow the chain by a moment, and a liquidation of ours must never be called lost."""

from __future__ import annotations

import contextlib
import json
import logging
from collections import defaultdict

from redis.exceptions import LockError
from sqlalchemy import select
from sqlalchemy.orm import Session

from liqbot.celery import app
from liqbot.chain import aave
from liqbot.domain.capture import AttemptView, LiquidationEvent, bonus_base, classify
from liqbot.logs import FAST
from liqbot.runtime import Runtime, runtime
from liqbot.store.captures import record_captures
from liqbot.store.db import Attempt
from liqbot.store.positions import get_cursor, set_cursor, tracked_since

log = logging.getLogger(__name__)
CAPTURE_CURSOR = "capture"
CAPTURE_PAGE = 2_000  # blocks per eth_getLogs
SETTLE_BLOCKS = 2  # an event is audited once this many blocks old
AROUND_BLOCKS = 100  # our attempts for the user this close to the event's block are part of its story
PAGES_PER_RUN = 10


@app.task(name="liqbot.capture_audit")
def capture_audit() -> int:
    """Audit every LiquidationCall since the cursor, a bounded number of pages per run (a backfill from
    START_BLOCK spreads over runs); returns how many were recorded. One run at a time: a slow run and
    the next beat tick would log every loss twice."""
    rt = runtime()
    lock = rt.state.r.lock(rt.state.key("capture", "running"), timeout=app.conf.task_time_limit or 60)
    if not lock.acquire(blocking=False):
        return 0
    try:
        return _audit_since_cursor(rt)
    finally:
        with contextlib.suppress(LockError):  # held past its timeout: nothing of ours left to release
            lock.release()


def _audit_since_cursor(rt: Runtime) -> int:
    last = int(rt.rpc.call("eth_blockNumber"), 16) - SETTLE_BLOCKS
    with rt.sessions() as session:
        cursor = get_cursor(session, CAPTURE_CURSOR)
    start = rt.settings.start_block if cursor is None else cursor + 1
    held = users_in_flight(rt)
    recorded = 0
    for page in range(start, last + 1, CAPTURE_PAGE)[:PAGES_PER_RUN]:
        end = min(page + CAPTURE_PAGE - 1, last)
        logs = rt.rpc.call("eth_getLogs", {"fromBlock": hex(page), "toBlock": hex(end), "address": rt.market.pool,
                                           "topics": [aave.LIQUIDATION_CALL_EVENT.topic0]})
        events = sorted((to_event(lg) for lg in logs if not lg.get("removed")), key=lambda e: (e.block, e.log_index))
        waiting = next((e for e in events if e.user in held), None)
        if waiting is not None:  # audit up to the block before it; the next run goes on from there
            events, end = [e for e in events if e.block < waiting.block], waiting.block - 1
        with rt.sessions.begin() as session:
            recorded += record_captures(session, audit(rt, session, events))
            if end >= page:
                set_cursor(session, CAPTURE_CURSOR, end)
        if waiting is not None:
            log.info("capture audit waits at block %d: a liquidation of ours for user=%s is in flight", waiting.block,
                     waiting.user)
            break
    return recorded


def audit(rt: Runtime, session: Session, events: list[LiquidationEvent]) -> list[dict]:
    """Classify one page's events (the shell around classify: prices, timestamps, attempts, tracking)."""
    if not events:
        return []
    ours = [rt.sender.address, rt.liquidator_contract or ""]
    prices, stamps = block_context(rt, sorted({e.block for e in events}))
    attempts = attempts_around(session, events)
    since = tracked_since(session, {e.user for e in events})
    index = {e.tx_hash: e.tx_index for e in events}  # our own liquidations mined in this page, ordered
    rows = []
    for e in events:
        views = [AttemptView(a.id, a.detected_block, a.outcome, a.reason, a.tx_hash, a.mined_block, index.get(a.tx_hash or ""))
                 for a in attempts[e.user] if abs(a.detected_block - e.block) <= AROUND_BLOCKS]
        tracked = since.get(e.user, e.block) < e.block or any(v.detected_block <= e.block for v in views)
        verdict = classify(e, ours, tracked, views)
        coll, debt = rt.market.by_asset[e.collateral_asset], rt.market.by_asset[e.debt_asset]
        bonus = bonus_base(e, prices[e.block][e.collateral_asset], coll.decimals, prices[e.block][e.debt_asset], debt.decimals)
        if not verdict.ours:
            log.info("%s lost user=%s block=%d to %s tx=%s: %s", FAST, e.user, e.block, e.liquidator, e.tx_hash,
                     verdict.reason)
        rows.append({"tx_hash": e.tx_hash, "log_index": e.log_index, "block": e.block, "block_timestamp": stamps[e.block],
                     "user": e.user, "liquidator": e.liquidator, "collateral_asset": e.collateral_asset,
                     "debt_asset": e.debt_asset, "debt_covered": e.debt_to_cover, "collateral_seized": e.collateral_seized,
                     "bonus_base": bonus, "ours": verdict.ours, "reason": verdict.reason, "attempt_id": verdict.attempt_id})
    return rows


def to_event(lg: dict) -> LiquidationEvent:
    ev = aave.LIQUIDATION_CALL_EVENT.decode(lg)
    return LiquidationEvent(
        block=int(lg["blockNumber"], 16), tx_index=int(lg["transactionIndex"], 16), log_index=int(lg["logIndex"], 16),
        tx_hash=lg["transactionHash"], user=ev["user"], liquidator=ev["liquidator"], collateral_asset=ev["collateralAsset"],
        debt_asset=ev["debtAsset"], debt_to_cover=ev["debtToCover"], collateral_seized=ev["liquidatedCollateralAmount"])


def block_context(rt: Runtime, blocks: list[int]) -> tuple[dict[int, dict[str, int]], dict[int, int]]:
    """Every reserve's oracle price and the timestamp at each block: one pinned getAssetsPrices and one
    header per block, batched."""
    assets = [r.asset for r in rt.market.reserves]
    data = aave.GET_ASSETS_PRICES.calldata(assets)
    prices: dict[int, dict[str, int]] = {}
    stamps: dict[int, int] = {}
    step = max(1, rt.settings.scan_batch_size // 2)
    for i in range(0, len(blocks), step):
        chunk = blocks[i : i + step]
        calls = [c for b in chunk for c in (("eth_call", [{"to": rt.market.oracle, "data": data}, hex(b)]),
                                            ("eth_getBlockByNumber", [hex(b), False]))]
        replies = rt.rpc.batch(calls)
        for b, raw, header in zip(chunk, replies[::2], replies[1::2], strict=True):
            prices[b] = dict(zip(assets, aave.GET_ASSETS_PRICES.decode(raw), strict=True))
            stamps[b] = int(header["timestamp"], 16)
    return prices, stamps


def attempts_around(session: Session, events: list[LiquidationEvent]) -> dict[str, list[Attempt]]:
    users = sorted({e.user for e in events})
    lo, hi = min(e.block for e in events) - AROUND_BLOCKS, max(e.block for e in events) + AROUND_BLOCKS
    out: dict[str, list[Attempt]] = defaultdict(list)
    for a in session.scalars(select(Attempt).where(Attempt.user.in_(users) & Attempt.detected_block.between(lo, hi))
                             .order_by(Attempt.id)):
        out[a.user].append(a)
    return out


def users_in_flight(rt: Runtime) -> set[str]:
    """Users with a liquidation of ours signed but not recorded (the in-flight intents), or sent with no
    receipt yet: their events wait, so the audit sees our final outcome."""
    intents = rt.state.r.hvals(rt.state.key("inflight"))
    with rt.sessions() as session:
        pending = set(session.scalars(select(Attempt.user).where(Attempt.outcome == "sent")))
    return pending | {json.loads(raw).get("user", "") for raw in intents}
