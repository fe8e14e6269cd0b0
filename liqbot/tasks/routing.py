"""Route a liquidatable user to the priority lane, through the dedupe lock, with a fallback.

The lane is "unavailable" when publishing to it raises, or when no priority worker has beaten its
heartbeat recently: a Redis list accepts messages whether or not anybody consumes them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from eth_utils import is_address, to_checksum_address

from liqbot.logs import FAST

log = logging.getLogger(__name__)


def valid_user(user: object) -> str | None:
    """A task argument that should be a user address: checksummed, or None (logged) when it is not."""
    if isinstance(user, str) and is_address(user) and int(user, 16) != 0:
        return to_checksum_address(user)
    log.error("ignoring a task for %r: not a user address", user)
    return None


@dataclass(frozen=True)
class Detection:
    user: str
    block: int
    detected_at: float  # unix seconds, when the bot first saw the user liquidatable
    path: str  # fast | scan | update


def route_liquidation(det: Detection) -> str | None:
    """Returns the queue the task went to, or None when another detection already holds the user."""
    from liqbot.runtime import runtime
    from liqbot.tasks.liquidate import check_and_liquidate

    rt = runtime()
    s = rt.settings
    claimed, alive = rt.state.claim(det.user, s.dedupe_window_secs, s.priority_heartbeat_ttl_secs)
    if not claimed:
        rt.state.count("deduped")
        log.debug("%s user=%s already claimed (dedupe)", det.path, det.user)
        return None
    expires = datetime.fromtimestamp(det.detected_at + s.liquidation_max_age_secs, UTC)

    def publish(queue: str, path: str) -> None:
        check_and_liquidate.apply_async(
            (det.user, det.block, det.detected_at, path, time.time()), queue=queue, routing_key=queue, expires=expires)

    if alive:
        try:
            publish("priority", det.path)
            log.info("%s queued user=%s block=%s path=%s detect->enqueue=%.1fms", FAST, det.user, det.block, det.path,
                     (time.time() - det.detected_at) * 1000)
            return "priority"
        except Exception as exc:
            log.warning("%s publish to priority failed for user=%s: %s; falling back to default", FAST, det.user, exc)
    else:
        log.warning("no priority worker alive; user=%s goes to the default queue", det.user)
    try:
        publish("default", "fallback")
    except Exception:
        rt.state.release(det.user)  # let the next detection try again rather than drop the user
        raise
    rt.state.count("fallback")
    return "default"
