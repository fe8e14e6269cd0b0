"""Celery's worker consumer, made to survive a task message it cannot turn into a task.

A well-formed kombu envelope whose body Celery cannot decode (not JSON, a type it does not accept, an
unknown task) is Celery's business and it handles it: logged, rejected, consuming goes on. But a body
or headers that decode to the wrong shape (`[1]` where protocol 2 wants `[args, kwargs, embed]`, a
malformed `timelimit`, ...) raise while the request is built, and that ends the worker process
("Unrecoverable error: ValueError"; celery/celery#4308, open). Here such a message gets Celery's own
treatment for an invalid task (logged, rejected) and a copy on the broker's dead-letter list
(liqbot.broker).

Kept apart from liqbot.broker so that only workers import celery.worker (`worker_consumer` in
celeryconfig).
"""

from __future__ import annotations

import logging

from celery.worker.consumer import Consumer
from kombu.utils.json import dumps

log = logging.getLogger(__name__)


class PoisonSafeConsumer(Consumer):
    def create_task_handler(self, *args, **kwargs):
        handle = super().create_task_handler(*args, **kwargs)
        recoverable = (*self.connection_errors, *self.channel_errors, MemoryError)

        def on_task_received(message):
            try:
                return handle(message)
            except recoverable:  # the connection's, for Celery to reconnect
                raise
            except Exception as exc:
                self._set_aside(message, exc)
                return None

        return on_task_received

    def _set_aside(self, message, exc: Exception) -> None:
        info = message.delivery_info or {}
        queue = str(info.get("routing_key") or info.get("exchange") or "?")
        dead_letter = getattr(message.channel, "_dead_letter", None)
        if dead_letter is not None:
            raw = getattr(message, "_raw", None)
            try:
                payload = dumps(raw) if raw is not None else repr(message.body)
            except Exception:
                payload = repr(raw)
            dead_letter(queue, queue, payload, f"not a task ({type(exc).__name__}: {exc})"[:200])
        if message.acknowledged:  # a solo pool ran it already: nothing to reject
            log.error("task message on %s failed after it was handled: %r", queue, exc, exc_info=exc)
            return
        self.on_invalid_task(None, message, exc)
