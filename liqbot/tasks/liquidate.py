"""check_and_liquidate: the priority lane's only task."""

from __future__ import annotations

import logging
import time

from liqbot.celery import app
from liqbot.chain import aave
from liqbot.chain.reader import user_positions
from liqbot.chain.sender import SimulationFailed
from liqbot.domain.liquidation import simple_plan
from liqbot.logs import FAST
from liqbot.runtime import runtime
from liqbot.store.attempts import record_attempt

log = logging.getLogger(__name__)


@app.task(name="liqbot.check_and_liquidate", bind=True, acks_late=True, reject_on_worker_lost=True)
def check_and_liquidate(self, user: str, detected_block: int, detected_at: float, path: str,
                        enqueued_at: float | None = None) -> str:
    """Re-read the user fresh from the chain; if still liquidatable, liquidate and record the attempt."""
    started = time.time()
    rt = runtime()
    mark = FAST if path != "fallback" else "↪"
    record = {"user": user, "path": path, "task_id": self.request.id, "detected_block": detected_block,
              "detected_at": detected_at, "enqueued_at": enqueued_at, "started_at": started}
    market = rt.market
    acc, positions = user_positions(rt.rpc, market, user)
    plan = simple_plan(positions) if acc.liquidatable else None
    if plan is None:
        reason = "no longer liquidatable" if not acc.liquidatable else "no seizable collateral / repayable debt"
        return _skip(rt, record, reason, mark)

    sender = rt.sender
    sender.ensure_approved(plan.debt_asset, market.pool)
    data = aave.LIQUIDATION_CALL.calldata(plan.collateral_asset, plan.debt_asset, user, plan.debt_to_cover, False)
    try:
        gas, fee = sender.prepare(market.pool, data)
    except SimulationFailed as exc:
        return _skip(rt, record, f"reverted in simulation: {exc}"[:200], mark)
    tx_hash = sender.send(market.pool, data, gas, fee)
    sent = time.time()
    latency_ms = (sent - detected_at) * 1000
    # Hold the user until the receipt is in, so no second detection races the pending transaction.
    rt.state.r.set(rt.state.key("dedupe", user), "sent", px=int(rt.settings.liquidation_max_age_secs * 1000))
    log.info("%s liquidation sent user=%s block=%s path=%s detect->send=%.1fms start->send=%.1fms tx=%s",
             mark, user, detected_block, path, latency_ms, (sent - started) * 1000, tx_hash)
    with rt.sessions.begin() as session:
        record_attempt(session, **record, sent_at=sent, tx_hash=tx_hash, collateral_asset=plan.collateral_asset,
                       debt_asset=plan.debt_asset, debt_to_cover=plan.debt_to_cover, outcome="sent",
                       latency_ms=latency_ms)
    return tx_hash


def _skip(rt, record: dict, reason: str, mark: str) -> str:
    log.info("%s skipped user=%s block=%s: %s", mark, record["user"], record["detected_block"], reason)
    with rt.sessions.begin() as session:
        record_attempt(session, **record, outcome="skipped", reason=reason)
    return "skipped"
