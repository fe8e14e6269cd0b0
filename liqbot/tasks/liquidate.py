"""check_and_liquidate: the priority lane's only task."""

from __future__ import annotations

import time

from liqbot.celery import app
from liqbot.domain.plan import Plan
from liqbot.execution import run_and_record
from liqbot.logs import FAST
from liqbot.runtime import runtime
from liqbot.tasks.routing import valid_user

MAX_READ_RETRIES = 2
MAX_GROUP = 64  # siblings one task may take, whatever a message claims


@app.task(name="liqbot.check_and_liquidate", bind=True, acks_late=True, reject_on_worker_lost=True, time_limit=15,
          soft_time_limit=12)
def check_and_liquidate(self, user: str, detected_block: int, detected_at: float, path: str,
                        enqueued_at: float | None = None, group: list | None = None, plan: dict | None = None) -> str:
    """Liquidate the user if still worth it, and record the attempt either way. With a `plan` (made from
    the producer's mirror) the exact call is simulated and sent; without one, or when the simulation
    disagrees, the user is read fresh from the chain first.
    `group`: [user, task id] of users detected in the same moment; this task takes those it can."""
    user = valid_user(user)
    if user is None:
        return "invalid"
    record = {"user": user, "path": path, "task_id": self.request.id, "detected_block": detected_block,
              "detected_at": detected_at, "enqueued_at": enqueued_at, "started_at": time.time()}
    result = run_and_record(runtime(), record, FAST if path != "fallback" else "↪", valid_group(group, user),
                            Plan.from_message(plan))
    if result.retryable and self.request.retries < MAX_READ_RETRIES:
        # A read failed before anything was sent (a node hiccup): try again at once; sends never retry.
        raise self.retry(countdown=0.2, max_retries=MAX_READ_RETRIES)
    return result.outcome


def valid_group(group: object, user: str) -> list[tuple[str, str]]:
    """The siblings a task may claim: well-formed [address, task id] pairs, at most MAX_GROUP of them."""
    if not isinstance(group, list):
        return []
    out: dict[str, str] = {}
    for entry in group[:MAX_GROUP]:
        if isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[1], str):
            sib = valid_user(entry[0])
            if sib is not None and sib != user:
                out.setdefault(sib, entry[1])
    return list(out.items())
