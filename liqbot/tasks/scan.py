"""The beat scanner: a frequent scan of at-risk users and a full rescan of every known borrower."""

from __future__ import annotations

import logging
import time

from liqbot.celery import app
from liqbot.chain.reader import account_data
from liqbot.runtime import runtime
from liqbot.store.positions import at_risk_users, known_users, save_health
from liqbot.tasks.routing import Detection, route_liquidations

log = logging.getLogger(__name__)


def scan_users(users: list[str], what: str, yield_to_lane: bool = False) -> int:
    """Health-check users in batches, store their health, route the liquidatable ones that are not
    parked (see State.park: bad debt and dust wait for an event, not for the next scan). With
    `yield_to_lane`, each batch first waits while the priority lane is working."""
    if not users:
        return 0
    rt = runtime()
    s = rt.settings
    t0 = time.monotonic()
    block = int(rt.rpc.call("eth_blockNumber"), 16)
    found = routed = 0
    for start in range(0, len(users), s.scan_batch_size * 4):
        chunk = users[start : start + s.scan_batch_size * 4]
        if yield_to_lane:
            rt.state.yield_to_lane(s.lane_yield_max_ms / 1000, unless_fast_path_off=True)
        accounts = account_data(rt.rpc, rt.market.pool, chunk, s.scan_batch_size, block=hex(block))
        now = time.time()
        hits = [Detection(acc.user, block, now, "scan") for acc in accounts.values() if acc.liquidatable]
        if hits:
            found += len(hits)
            routed += sum(q is not None for q in route_liquidations(hits))
        with rt.sessions.begin() as session:
            save_health(session, accounts.values(), block)
        if len(users) > s.scan_batch_size * 4:
            log.info("%s: %d/%d users checked", what, min(start + len(chunk), len(users)), len(users))
    log.info("%s: %d users at block %d in %.0f ms, %d liquidatable, %d routed (the rest parked or already held)",
             what, len(users), block, (time.monotonic() - t0) * 1000, found, routed)
    return found


@app.task(name="liqbot.scan_at_risk")
def scan_at_risk() -> int:
    rt = runtime()
    with rt.sessions() as session:
        users = at_risk_users(session, rt.settings.at_risk_hf_wad)
    return scan_users(users, "at-risk scan")


@app.task(name="liqbot.full_rescan")
def full_rescan() -> int:
    rt = runtime()
    with rt.sessions() as session:
        users = known_users(session)
    return scan_users(users, "full rescan", yield_to_lane=True)
