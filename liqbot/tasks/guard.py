"""guard_backrun: a liquidation sent behind a pending price update must never be left to land without it.

Sent with the update's max fee right after it, ours is mined in the update's block, after it, or later;
but if the update is dropped or replaced (its sender changed its mind, or bid it out), ours would be mined
alone and revert. So until the update is mined, this task looks again every GUARD_SECS; once the update is
gone, or after GUARD_MAX_SECS, each of ours still pending is replaced at the same nonce by a zero-value
transfer to ourselves with higher fees (a cancel), and its attempt is recorded as cancelled."""

from __future__ import annotations

import logging
import time

from sqlalchemy import select

from liqbot.celery import app
from liqbot.domain.fees import Fees
from liqbot.logs import FAST
from liqbot.runtime import runtime
from liqbot.store.db import Attempt

log = logging.getLogger(__name__)
GUARD_SECS = 1.0
GUARD_MAX_SECS = 120.0
BUMP_BPS = 1_250  # a replacement must outbid the transaction it replaces (nodes ask for +10%)


@app.task(name="liqbot.guard_backrun", bind=True, max_retries=None, acks_late=True)
def guard_backrun(self, update_hash: str, sent: list[list], started_at: float) -> str:
    """`sent`: [user, tx hash, nonce, max fee, tip] of each liquidation sent behind `update_hash`."""
    rt = runtime()
    replies = rt.rpc.batch([("eth_getTransactionByHash", [update_hash])] +
                           [("eth_getTransactionReceipt", [s[1]]) for s in sent])
    update, receipts = replies[0], replies[1:]
    waiting = [s for s, r in zip(sent, receipts, strict=True) if r is None]
    if not waiting or (update is not None and update.get("blockNumber")):
        return "settled"  # ours are mined, or follow a mined update (the receipts tracker records them)
    if update is not None and time.time() - started_at < GUARD_MAX_SECS:
        raise self.retry(countdown=GUARD_SECS)
    why = "was dropped or replaced" if update is None else f"is still pending after {GUARD_MAX_SECS:.0f} s"
    for user, tx_hash, nonce, max_fee, tip in waiting:
        bump = Fees(max_fee * (10_000 + BUMP_BPS) // 10_000 + 1, tip * (10_000 + BUMP_BPS) // 10_000 + 1)
        try:
            cancel = rt.sender.cancel(nonce, bump)
        except Exception as exc:  # mined meanwhile (nonce too low), or the node refused: the receipts tell
            log.warning("%s could not cancel %s (user=%s, nonce %d): %s", FAST, tx_hash, user, nonce, exc)
            continue
        with rt.sessions.begin() as session:
            attempt = session.scalar(select(Attempt).where(Attempt.tx_hash == tx_hash))
            if attempt is not None and attempt.outcome == "sent":
                attempt.outcome = "cancelled"
                attempt.reason = f"the update it backs ({update_hash}) {why}; replaced by {cancel}"[:200]
        rt.state.release(user)
        log.warning("%s backrun cancelled user=%s tx=%s: the update %s %s", FAST, user, tx_hash, update_hash, why)
    return "cancelled"
