"""The Celery app (`celery -A liqbot ...`). Priority workers keep a heartbeat in Redis so that
producers can tell a live lane from a queue nobody consumes."""

from __future__ import annotations

import contextlib
import logging
import threading

from celery import Celery
from celery.signals import worker_process_init, worker_ready, worker_shutdown

app = Celery("liqbot", include=["liqbot.tasks.liquidate", "liqbot.tasks.positions", "liqbot.tasks.receipts", "liqbot.tasks.scan"])
app.config_from_object("celeryconfig")

log = logging.getLogger(__name__)
_stop = threading.Event()


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


@worker_process_init.connect
def _warm(**_: object) -> None:
    """Discover the market and open connections before the first liquidation, not during it."""
    from liqbot.runtime import runtime

    try:
        runtime().warm()
    except Exception as exc:
        log.warning("warm-up failed (will retry on first task): %s", exc)
