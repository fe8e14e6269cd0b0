"""Bookkeeping on the default queue: positions and receipts."""

from __future__ import annotations

import logging
import time

from liqbot.celery import app
from liqbot.chain.reader import user_positions
from liqbot.runtime import runtime
from liqbot.store.attempts import pending_attempts
from liqbot.store.positions import save_position
from liqbot.tasks.routing import Detection, route_liquidation

log = logging.getLogger(__name__)


@app.task(name="liqbot.update_position")
def update_position(user: str, block: int = 0, detected_at: float | None = None) -> bool:
    """Refresh the user's stored position; a liquidatable user is routed to the priority lane."""
    rt = runtime()
    acc, positions = user_positions(rt.rpc, rt.market, user)
    with rt.sessions.begin() as session:
        save_position(session, acc, positions, block)
    if acc.liquidatable:
        route_liquidation(Detection(user, block, detected_at or time.time(), "update"))
    return acc.liquidatable


@app.task(name="liqbot.track_receipts")
def track_receipts() -> int:
    """Fill in the outcome of sent liquidations from their receipts, off the priority lane."""
    rt = runtime()
    with rt.sessions.begin() as session:
        pending = pending_attempts(session)
        if not pending:
            return 0
        receipts = rt.rpc.batch([("eth_getTransactionReceipt", [a.tx_hash]) for a in pending])
        done = 0
        for attempt, receipt in zip(pending, receipts, strict=True):
            if receipt is None:
                continue
            ok = int(receipt["status"], 16) == 1
            attempt.outcome = "mined" if ok else "reverted"
            attempt.gas_used = int(receipt["gasUsed"], 16)
            attempt.mined_block = int(receipt["blockNumber"], 16)
            rt.state.release(attempt.user)
            done += 1
            log.info("receipt user=%s tx=%s %s in block %s", attempt.user, attempt.tx_hash, attempt.outcome,
                     attempt.mined_block)
    return done
