"""check_and_liquidate: the priority lane's only task."""

from __future__ import annotations

import re
import time

from liqbot.celery import app
from liqbot.domain.plan import Plan
from liqbot.domain.route import FLASH
from liqbot.execution import SENT_BY_PRODUCER, Outcome, record_sent, run_and_record
from liqbot.logs import FAST
from liqbot.runtime import runtime
from liqbot.tasks.routing import valid_user

MAX_READ_RETRIES = 2
MAX_GROUP = 64  # siblings one task may take, whatever a message claims
RESULT_MAX = 160  # characters of a task's result: what Flower's Tasks page shows for it
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)  # a node URL may carry an API key


@app.task(name="liqbot.check_and_liquidate", bind=True, acks_late=True, reject_on_worker_lost=True, time_limit=15,
          soft_time_limit=12)
def check_and_liquidate(self, user: str, detected_block: int, detected_at: float, path: str,
                        enqueued_at: float | None = None, group: list | None = None, plan: dict | None = None,
                        sent: dict | None = None) -> str:
    """Liquidate the user if still worth it, and record the attempt either way. With a `plan` (made from
    the producer's mirror) the exact call is simulated and sent; without one, or when the simulation
    disagrees, the user is read fresh from the chain first. With `sent` (the producer sent the plan itself,
    PRODUCER_SENDS) the task records that transaction.
    `group`: [user, task id] of users detected in the same moment; this task takes those it can.
    Returns one line for the operator (Flower's Tasks page shows it, see `result_text`)."""
    user = valid_user(user)
    if user is None:
        return "invalid user"
    record = {"user": user, "path": path, "task_id": self.request.id, "detected_block": detected_block,
              "detected_at": detected_at, "enqueued_at": enqueued_at, "started_at": time.time()}
    mark = FAST if path != "fallback" else "↪"
    if isinstance(sent, dict):
        return result_text(record_sent(runtime(), record, sent, mark))
    result = run_and_record(runtime(), record, mark, valid_group(group, user), Plan.from_message(plan))
    if result.retryable and self.request.retries < MAX_READ_RETRIES:
        # A read failed before anything was sent (a node hiccup): try again at once; sends never retry.
        raise self.retry(countdown=0.2, max_retries=MAX_READ_RETRIES)
    return result_text(result)


def result_text(result: Outcome) -> str:
    """What happened to the task's own user, in one short line with no secret: "sent 0x1234abcd… profit
    12.34 USD", "skipped: unprofitable", "lost: lost race: …", "grouped: …". The task-succeeded event
    carries it (as its repr) whatever `task_ignore_result` says; nothing reads it back."""
    if result.outcome == "sent":
        f = result.fields
        profit = f.get("expected_profit_base")
        text = f"sent {str(f.get('tx_hash', ''))[:10]}…" + (f" profit {profit / 10**8:,.2f} USD" if profit is not None else "")
        if f.get("route") == FLASH:
            text += " by flash loan"
        if result.reason == SENT_BY_PRODUCER:
            text += " by the producer"
        if result.group > 1:
            text += f", group of {result.group}"
        return text
    if result.outcome == "grouped":
        return "grouped: liquidated in the group of another task"
    label = "dry run" if result.outcome == "dry_run" else result.outcome
    reason = _URL.sub("<url>", result.reason)
    return f"{label}: {reason}"[:RESULT_MAX] if reason else label


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
