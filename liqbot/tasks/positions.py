"""Bookkeeping on the default queue: positions."""

from __future__ import annotations

import logging
import time

from liqbot.celery import app
from liqbot.chain.snapshot import read_snapshot
from liqbot.runtime import runtime
from liqbot.store.positions import save_position
from liqbot.tasks.routing import Detection, route_liquidation, valid_user

log = logging.getLogger(__name__)


@app.task(name="liqbot.update_position")
def update_position(user: str, block: int = 0, detected_at: float | None = None) -> bool:
    """Refresh the user's stored position; a liquidatable user is routed to the priority lane unless
    it is parked (the producer unparks the users an event touches before it publishes this task)."""
    user = valid_user(user)
    if user is None:
        return False
    rt = runtime()
    rt.state.yield_to_lane(rt.settings.lane_yield_max_ms / 1000, unless_fast_path_off=True)
    snap = read_snapshot(rt.rpc, rt.market, user)
    rt.state.remember_configs({user: snap.config})
    with rt.sessions.begin() as session:
        save_position(session, snap.account, snap.positions, snap.block)
    if snap.account.liquidatable:
        route_liquidation(Detection(user, block or snap.block, detected_at or time.time(), "update"))
    return snap.account.liquidatable
