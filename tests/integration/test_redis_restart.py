"""A Redis restart while a worker holds a message it has not acknowledged (a countdown task, as the backrun
guard is) must not end the worker: Celery 5.7 drops the connection's info before kombu restores the
unacked messages, and kombu then fails with AttributeError, "Unrecoverable error" (liqbot.broker mends it)."""

from __future__ import annotations

import signal
import time

from liqbot.devnet import Devnet
from liqbot.devnet.stack import DEFAULT_WORKER, Stack
from tests.helpers import wait_until

UPDATE = "0x" + "1" * 64


def test_a_worker_holding_a_countdown_task_survives_a_redis_restart(chain: Devnet, env: dict, stack: Stack):
    from liqbot.celery import app
    from liqbot.tasks.guard import guard_backrun

    url = stack.redis("redis")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    worker = stack.worker("default", DEFAULT_WORKER, extra_env={"REDIS_URL": url})

    def send(countdown: float | None) -> str:
        with app.connection_for_write(url) as conn:
            return guard_backrun.apply_async((UPDATE, [], time.time()), queue="default", routing_key="default",
                                             countdown=countdown, connection=conn).id

    held = send(600)
    wait_until(lambda: f"guard_backrun[{held}] received" in worker.text(), 30, "the countdown task held by the worker")
    stack.stop("redis", signal.SIGKILL)
    time.sleep(1)
    stack.redis("redis", port=port)
    later = wait_until(lambda: _sent(send), 30, "a publish after the restart")
    wait_until(lambda: f"guard_backrun[{later}] succeeded" in worker.text(), 60, "a task consumed after the restart")
    assert worker.alive()
    assert "Unrecoverable error" not in worker.text()


def _sent(send) -> str | None:
    try:
        return send(None)
    except Exception:
        return None
