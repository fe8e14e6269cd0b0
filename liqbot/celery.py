"""The Celery app (`celery -A liqbot ...`). Priority workers keep a heartbeat in Redis so that
producers can tell a live lane from a queue nobody consumes."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from celery import Celery
from celery.signals import celeryd_after_setup, task_prerun, worker_process_init, worker_ready, worker_shutdown
from celery.signals import setup_logging as celery_setup_logging

from liqbot.logs import FAST, LEVELS

app = Celery("liqbot", include=["liqbot.tasks.capture", "liqbot.tasks.guard", "liqbot.tasks.liquidate", "liqbot.tasks.positions",
                                "liqbot.tasks.receipts", "liqbot.tasks.scan"])
app.config_from_object("celeryconfig")
# Flower sets up its logging itself, from FLOWER_LOGGING (tornado's --logging): LOG_LEVEL governs it too.
_level = os.environ.get("LOG_LEVEL", "INFO").strip().upper()
os.environ["FLOWER_LOGGING"] = (_level if _level in LEVELS else "INFO").lower()
# Flower's Tasks page with each task's result (check_and_liquidate's "sent 0x… profit …" / "skipped: …"); a
# --tasks_columns flag still wins.
os.environ.setdefault("FLOWER_TASKS_COLUMNS", "name,uuid,state,result,received,runtime,worker")

log = logging.getLogger(__name__)
_stop = threading.Event()
LANE_TASK = "liqbot.check_and_liquidate"
LANE_ARGS = ("user", "detected_block", "detected_at", "path", "enqueued_at")


@celery_setup_logging.connect
def _setup_logging(**_: object) -> None:
    """Workers, their pool processes and beat log at LOG_LEVEL like the producer, whatever `-l` says:
    one setting for every process, whose default shows the lane's ⚡ lines. A receiver here also
    keeps Celery from configuring the root logger itself (at `-l`'s default, WARNING)."""
    from liqbot.config import get_settings_or_exit
    from liqbot.logs import setup_logging

    setup_logging(get_settings_or_exit().log_level)


@task_prerun.connect
def _lane_started(task: object = None, args: tuple = (), kwargs: dict | None = None, **_: object) -> None:
    """The lane's ⚡ started line: how long the detection and the queue took to reach a worker."""
    if getattr(task, "name", None) != LANE_TASK:
        return
    a = {**dict(zip(LANE_ARGS, args, strict=False)), **(kwargs or {})}
    now = time.time()
    ms = {k: f"{(now - a[k]) * 1000:.1f}ms" if isinstance(a.get(k), int | float) else "?" for k in ("detected_at", "enqueued_at")}
    log.info("%s started user=%s block=%s path=%s detect->start=%s enqueue->start=%s",
             FAST if a.get("path") != "fallback" else "↪", a.get("user"), a.get("detected_block"), a.get("path"),
             ms["detected_at"], ms["enqueued_at"])


def _consumes_priority(consumer: object) -> bool:
    queues = getattr(getattr(consumer, "task_consumer", None), "queues", None) or []
    return any(q.name == "priority" for q in queues)


@worker_ready.connect
def _start_heartbeat(sender: object, **_: object) -> None:
    from liqbot.runtime import runtime

    try:
        _serve_metrics()
    except Exception as exc:  # metrics are a nicety; the heartbeat below is what routes liquidations here
        log.warning("metrics not served: %s", exc)
    if not _consumes_priority(sender):
        return
    rt = runtime()
    name = getattr(sender, "hostname", "worker")
    interval = rt.settings.priority_heartbeat_ttl_secs / 3

    def beat() -> None:
        while not _stop.is_set():
            try:
                rt.state.heartbeat(name)
            except Exception as exc:  # Redis down: keep trying, the lane looks dead meanwhile
                log.warning("priority heartbeat failed: %s", exc)
            _stop.wait(interval)

    threading.Thread(target=beat, name="priority-heartbeat", daemon=True).start()
    log.info("priority worker %s alive (heartbeat every %.1fs)", name, interval)


def _serve_metrics() -> None:
    """METRICS_PORT + 1 upwards: the first free port, so several workers on one machine each get one."""
    import socket

    from liqbot.metrics import serve
    from liqbot.runtime import runtime

    base = runtime().settings.metrics_port
    for port in range(base + 1, base + 20) if base else ():
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                serve(port)
                return


@worker_shutdown.connect
def _stop_heartbeat(sender: object = None, **_: object) -> None:
    _stop.set()
    from liqbot.runtime import runtime

    with contextlib.suppress(Exception):
        runtime().state.forget_worker(getattr(sender, "hostname", "worker"))


@celeryd_after_setup.connect
def _check_chain(**_: object) -> None:
    """`celery worker` start-up, logging set up, pool not forked yet: a worker missing a setting it needs, or
    whose LIQUIDATOR_CONTRACT is wrong, stops here (one line, exit code 2), not at every liquidation. Both
    lanes sign (liquidations; approvals, cancels), so both need the node, the market and the key. Beat only
    sends task messages and Flower only reads Redis: their settings load (celeryconfig) needs nothing more."""
    from liqbot.config import LIQUIDATOR_KEY, get_settings_or_exit
    from liqbot.runtime import check_chain_or_exit

    get_settings_or_exit("rpc_url", "pool_addresses_provider", LIQUIDATOR_KEY, command="celery worker")
    check_chain_or_exit()


@worker_process_init.connect
def _warm(**_: object) -> None:
    """Discover the market and open connections before the first liquidation, not during it."""
    from liqbot.runtime import runtime

    try:
        rt = runtime()
        rt.warm()
        rt.inventory.follow(still=lambda: runtime() is rt)  # a test's runtime replaced: the thread ends
    except Exception as exc:
        log.warning("warm-up failed (will retry on first task): %s", exc)
