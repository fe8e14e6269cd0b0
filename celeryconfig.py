"""Celery configuration for liqbot: broker, the two lanes, routes, acks, expiry and the beat schedule.

Values come from the validated settings (environment / MARKET_FILE); a bad value stops start-up
with the variable's name.
"""

import ssl

from kombu import Queue

from liqbot.broker import transport_for
from liqbot.config import get_settings_or_exit
from liqbot.store.redis_url import is_sentinel, parse_sentinel

_s = get_settings_or_exit()

broker_url = _s.redis_url
# kombu's Redis transport, but a message on a queue that is not a task envelope is set aside on the
# dead-letter list instead of stopping the worker (liqbot.broker; liqbot.consumer for bad task bodies).
broker_transport = transport_for(broker_url)
worker_consumer = "liqbot.consumer:PoisonSafeConsumer"
if broker_url.startswith("rediss://") and "ssl_cert_reqs" not in broker_url:
    broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}  # TLS to Redis, certificate verified
broker_connection_retry_on_startup = True
broker_transport_options = {
    # A SIGKILLed worker's unacked liquidation comes back after this; tasks run far shorter, and a
    # redelivered one past its expiry is dropped (the scanner finds the user again).
    "visibility_timeout": 60,
    "socket_timeout": 5,
    "socket_connect_timeout": 5,
    "health_check_interval": 10,
    "deadletter_key": f"{_s.redis_prefix}:deadletter",
}
if is_sentinel(broker_url):
    # A Sentinel group: kombu's sentinel transport asks the sentinels for the master and follows a failover;
    # it takes the master's name (and how to reach the sentinels) as transport options.
    broker_url, _group_options = parse_sentinel(broker_url).broker()
    broker_transport_options |= _group_options
    # A publish during a failover still fails within a second (kombu reconnects once, then raises, whatever
    # task_publish_retry_policy says): the producer buffers, the scanner finds the user again.
# A liquidation running when the broker connection drops (a failover, a Redis restart) runs to its end; if its
# message comes back anyway, the redelivery finds it done. (Celery 6 will cancel such tasks by default.)
worker_cancel_long_running_tasks_on_connection_loss = False
task_queues = (Queue("priority", routing_key="priority"), Queue("default", routing_key="default"))
task_default_queue = "default"
task_create_missing_queues = False
task_routes = {
    "liqbot.check_and_liquidate": {"queue": "priority"},
    "liqbot.*": {"queue": "default"},
}
task_acks_late = True
task_reject_on_worker_lost = True
task_ignore_result = True
task_serializer = "json"
accept_content = ["json"]
task_time_limit = 60
task_soft_time_limit = 45
worker_prefetch_multiplier = 1
worker_disable_rate_limits = True
worker_hijack_root_logger = False
# Task events feed Flower's Tasks page and processed counts: received, started, succeeded (with the result and
# runtime) from the workers, sent from publishers (queued tasks show too). Off by default (they cost the lane
# ~2 ms p50 on a loaded 2-core machine, bench/RESULTS.md): Flower switches the workers' on while it runs.
worker_send_task_events = _s.task_events
task_send_sent_event = _s.task_events

beat_scheduler = "liqbot.beat:LeasedScheduler"
beat_max_loop_interval = 1

beat_schedule = {
    "scan-at-risk": {
        "task": "liqbot.scan_at_risk",
        "schedule": _s.scan_interval_secs,
        "options": {"expires": _s.scan_interval_secs},
    },
    "full-rescan": {
        "task": "liqbot.full_rescan",
        "schedule": _s.full_rescan_interval_secs,
        "options": {"expires": _s.full_rescan_interval_secs},
    },
    "reconcile-chain": {
        "task": "liqbot.reconcile_chain",
        "schedule": 5.0,
        "options": {"expires": 5.0},
    },
    "capture-audit": {
        "task": "liqbot.capture_audit",
        "schedule": _s.capture_interval_secs,
        "options": {"expires": _s.capture_interval_secs},
    },
    "track-receipts": {
        "task": "liqbot.track_receipts",
        "schedule": 2.0,
        "options": {"expires": 2.0},
    },
}
