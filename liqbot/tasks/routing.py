"""Route a liquidatable user to the priority lane, through the dedupe lock, with a fallback.

The lane is "unavailable" when publishing to it raises, or when no priority worker has beaten its
heartbeat recently: a Redis list accepts messages whether or not anybody consumes them.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from eth_utils import is_address, to_checksum_address

from liqbot.domain.plan import Plan
from liqbot.logs import FAST

if TYPE_CHECKING:
    from liqbot.runtime import Runtime

log = logging.getLogger(__name__)
LEADER_PRIORITY, SIBLING_PRIORITY = 0, 9  # on Redis, 0 is served first


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
    plan: Plan | None = None  # what the detector decided; the worker verifies it instead of re-reading


def route_liquidation(det: Detection, after_event: bool = False) -> str | None:
    """Returns the queue the task went to, or None when another detection already holds the user (or
    it is parked)."""
    return route_liquidations([det], after_event)[0]


def route_liquidations(dets: list[Detection], after_event: bool = False, send: bool = False) -> list[str | None]:
    """Route users found liquidatable in the same moment: every dedupe lock in one round trip, one
    task per claimed user, each carrying its siblings (up to LIQUIDATION_GROUP_MAX) so that the first
    task to start liquidates them together. Returns each user's queue, or None when deduped or parked.

    Parked users (bad debt, dust: see State.park) are left out, one more round trip, unless the
    detection follows an event that touched them (`after_event`: the producer's checks), which
    unparks them in the same round trip as their locks: such a user is attempted once more.

    `send` (the producer with PRODUCER_SENDS): the plans fit to be trusted are sent right here, after the
    locks (execution.send_first); each of those users' tasks only records its transaction."""
    from liqbot.execution import send_first_peeks
    from liqbot.runtime import runtime
    from liqbot.tasks.liquidate import check_and_liquidate

    rt = runtime()
    s = rt.settings
    out: list[str | None] = [None] * len(dets)
    parked = set() if after_event else rt.state.parked_among([d.user for d in dets])
    wanted = [i for i, d in enumerate(dets) if d.user not in parked]
    if not wanted:
        return out
    plans = {dets[i].user: json.dumps(dets[i].plan.to_message()) for i in wanted if dets[i].plan}  # type: ignore[union-attr]
    peek = send_first_peeks(rt) if send else []
    claimed, alive, peeked = rt.state.claim_many([dets[i].user for i in wanted], s.dedupe_window_secs,
                                                 s.priority_heartbeat_ttl_secs, s.lane_yield_ms, unpark=after_event,
                                                 plans=plans, plan_ms=int(s.liquidation_max_age_secs * 1000), peek=peek)
    todo = [i for i, ok in zip(wanted, claimed, strict=True) if ok]
    if len(todo) < len(wanted):
        rt.state.count("deduped", len(wanted) - len(todo))
    ids = {i: str(uuid.uuid4()) for i in todo}
    sent = send_first(rt, dets, todo, ids, peeked) if send and alive else {}

    def publish(i: int, chunk: list[int], queue: str, path: str) -> None:
        det = dets[i]
        group = [[dets[j].user, ids[j]] for j in chunk if j != i]
        done = sent.get(det.user)
        kwargs = {"sent": done} if done else {"plan": det.plan.to_message()} if det.plan else None
        # The group's first task goes ahead of every sibling task (kombu's Redis priority lists): the
        # siblings mostly end at once, handled, and must not hold up the next group's first task.
        check_and_liquidate.apply_async(
            (det.user, det.block, det.detected_at, path, time.time(), group or None), kwargs, queue=queue,
            routing_key=queue, expires=datetime.fromtimestamp(det.detected_at + s.liquidation_max_age_secs, UTC),
            task_id=ids[i], priority=LEADER_PRIORITY if i == chunk[0] and not done else SIBLING_PRIORITY,
            # what Flower and the logs show; Celery's own repr of the plan and the group costs ~0.6 ms a publish
            argsrepr=f"({det.user}, {det.block}, {det.path}, group of {len(chunk)})",
            kwargsrepr="{sent}" if done else "{plan}" if det.plan else "{}")

    def route(i: int, chunk: list[int]) -> str:
        det = dets[i]
        if not alive:
            log.warning("no priority worker alive; user=%s goes to the default queue", det.user)
        else:
            try:
                publish(i, chunk, "priority", det.path)
                log.info("%s queued user=%s block=%s path=%s detect->enqueue=%.1fms%s", FAST, det.user, det.block,
                         det.path, (time.time() - det.detected_at) * 1000, f" group={len(chunk)}" if len(chunk) > 1
                         else f" to record tx={sent[det.user]['tx_hash']}" if det.user in sent else "")
                return "priority"
            except Exception as exc:
                log.warning("%s publish to priority failed for user=%s: %s; falling back to default", FAST, det.user, exc)
        publish(i, chunk, "default", "fallback")
        rt.state.count("fallback")
        return "default"

    size = s.liquidation_group_max
    rest = [i for i in todo if dets[i].user not in sent]
    # a user the producer sent for is recorded alone, after the others, which are grouped (liquidated together)
    chunks = [rest[k : k + size] for k in range(0, len(rest), size)] + [[i] for i in todo if dets[i].user in sent]
    order = [(i, chunk) for chunk in chunks for i in chunk]
    for n, (i, chunk) in enumerate(order):
        try:
            out[i] = route(i, chunk)
        except Exception:
            for j, _ in order[n:]:
                if dets[j].user not in sent:  # a sent user stays marked: its intent records it (tasks.receipts)
                    rt.state.release(dets[j].user)  # let the next detection try again rather than drop the users
            raise
    return out


def send_first(rt: Runtime, dets: list[Detection], todo: list[int], ids: dict[int, str], peeked: list) -> dict[str, dict]:
    """The claimed users with a plan, sent at once where the plan may be trusted (execution.send_first): one
    batch of at most LIQUIDATION_GROUP_MAX, as a lane task sends, the most profitable first (a node that mines
    each transaction as it comes takes the batch's head before a rival's transactions can interleave); the rest
    of a larger burst goes to the lane in groups, so that no send holds the account (and a Redis restart cannot
    catch) a long batch in flight. A
    failure here sends nothing more: every user then takes the lane's usual way (a transaction that did leave
    marked its user "sent" first, so the lane skips it)."""
    from liqbot.execution import send_first as send_plans

    now = time.time()
    records = [({"user": d.user, "path": d.path, "task_id": ids[i], "detected_block": d.block, "detected_at": d.detected_at,
                 "enqueued_at": None, "started_at": now}, d.plan) for i in todo if (d := dets[i]).plan is not None]
    records.sort(key=lambda rec: -rec[1].candidate.gross_profit_base)
    records = records[: rt.settings.liquidation_group_max]
    if not records:
        return {}
    try:
        sent = send_plans(rt, records, peeked)
    except Exception as exc:
        log.warning("%s the producer's send of %d plans failed (%s): the lane takes them", FAST, len(records), exc)
        return {}
    for record, _ in records:
        if (done := sent.get(record["user"])) is not None:
            log.info("%s liquidation sent by the producer user=%s block=%s path=%s detect->send=%.1fms (claimed=%.1f "
                     "checks=%.1f left=%.1f taken=%.1f) tx=%s", FAST, record["user"], record["detected_block"], record["path"],
                     (done["sent_at"] - record["detected_at"]) * 1000, (now - record["detected_at"]) * 1000, done["checks_ms"],
                     (done["left_at"] - record["detected_at"]) * 1000, (done["sent_at"] - done["left_at"]) * 1000,
                     done["tx_hash"])
    return sent
