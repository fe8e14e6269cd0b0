"""Prometheus metrics, served by the producer and by each worker's main process (METRICS_PORT).

Celery's prefork children cannot share in-process counters with their parent, so the collector reads
what every process already writes (the attempts table, Redis) at scrape time: every exporter reports
the same, consistent numbers, whichever process serves them."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from liqbot.domain.capture import reason_kind

if TYPE_CHECKING:
    from liqbot.runtime import Runtime

log = logging.getLogger(__name__)
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
BREAKER_STATES = ("closed", "open", "half_open")


class LiqbotCollector(Collector):
    def collect(self) -> Iterator:
        from liqbot.runtime import runtime
        from liqbot.store.db import Attempt

        rt = runtime()
        r, key = rt.state.r, rt.state.key
        with rt.sessions() as s:
            by_outcome = s.execute(select(Attempt.outcome, func.count()).group_by(Attempt.outcome)).all()
            by_reason = s.execute(select(Attempt.reason, func.count()).where(Attempt.outcome == "skipped")
                                  .group_by(Attempt.reason)).all()
            latencies = s.execute(select(Attempt.path, Attempt.latency_ms).where(Attempt.latency_ms.is_not(None))).all()
        outcomes = CounterMetricFamily("liqbot_liquidations", "Liquidation attempts by outcome", labels=["outcome"])
        for outcome, n in by_outcome:
            outcomes.add_metric([outcome], n)
        yield outcomes
        skips = CounterMetricFamily("liqbot_skips", "Skipped liquidations by reason", labels=["reason"])
        for reason, n in by_reason:
            skips.add_metric([reason_kind(reason)], n)
        yield skips
        hist = HistogramMetricFamily("liqbot_detection_to_send_ms", "Detection to send latency (ms)", labels=["path"])
        for path in sorted({p for p, _ in latencies}):
            values = [v for p, v in latencies if p == path]
            buckets = [(str(b), sum(v <= b for v in values)) for b in LATENCY_BUCKETS_MS] + [("+Inf", len(values))]
            hist.add_metric([path], buckets, sum(values))
        yield hist
        depth = GaugeMetricFamily("liqbot_queue_depth", "Messages waiting on a queue", labels=["queue"])
        for q in ("priority", "default"):
            depth.add_metric([q], rt.state.queue_depth(q))
        yield depth
        state = rt.breaker.state().state
        breaker = GaugeMetricFamily("liqbot_breaker_state", "1 for the breaker's current state", labels=["state"])
        for name in BREAKER_STATES:
            breaker.add_metric([name], 1.0 if name == state else 0.0)
        yield breaker
        alive = r.zcount(key("workers:priority"), time.time() - rt.settings.priority_heartbeat_ttl_secs, "+inf")
        yield GaugeMetricFamily("liqbot_priority_workers", "Priority workers with a live heartbeat", value=alive)
        producer = r.hgetall(key("producer", "status"))
        lag = GaugeMetricFamily("liqbot_producer_block_lag", "Blocks between the chain head and the producer's cursor")
        if producer:
            try:
                head = int(rt.rpc.call("eth_blockNumber"), 16)
                lag.add_metric([], max(0, head - int(producer.get("cursor", 0)) - 1))
            except Exception as exc:
                log.debug("no head for the lag metric: %s", exc)
        yield lag
        connected = GaugeMetricFamily("liqbot_producer_connected", "1 while the producer's WebSocket is live")
        connected.add_metric([], 1.0 if producer.get("state") == "connected" else 0.0)
        yield connected
        dead, _ = rt.state.dead_letters(0)
        yield GaugeMetricFamily("liqbot_dead_letters", "Undecodable messages the broker set aside (liqbot status shows "
                                "the newest)", value=dead)
        parked, _ = rt.state.parked(0)
        yield GaugeMetricFamily("liqbot_parked_users", "Users left off the lane until an event or a price move touches "
                                "them (bad debt, dust)", value=parked)
        audit = rt.state.mirror_audit()
        if audit:
            yield GaugeMetricFamily("liqbot_mirror_drift", "Users whose health the mirror computed differently from the "
                                    "chain at its last comparison", value=int(audit["drift"]))
            yield GaugeMetricFamily("liqbot_mirror_compared", "Users compared at the mirror's last comparison",
                                    value=int(audit["compared"]))
            yield GaugeMetricFamily("liqbot_mirror_audit_block", "Block of the mirror's last comparison",
                                    value=int(audit["block"]))
        yield from capture_metrics(rt)
        counters = rt.state.counters()
        routed = CounterMetricFamily("liqbot_routing", "Routing events (deduped, fallback)", labels=["event"])
        for name, n in counters.items():
            routed.add_metric([name], n)
        yield routed


def capture_metrics(rt: Runtime) -> Iterator:
    """The capture rate over the last hour and day, by count and by bonus, and the day's losses by reason
    (from the capture audit's table; a window with no liquidation has no rate)."""
    from liqbot.store.captures import capture_summary

    with rt.sessions() as s:
        summary = capture_summary(s, time.time())
    rate = GaugeMetricFamily("liqbot_capture_rate", "Liquidations on the market that were ours (0-1)", labels=["window", "by"])
    for window, r in summary["rates"].items():
        for by in ("count", "bonus"):
            if r[f"by_{by}"] is not None:
                rate.add_metric([window, by], r[f"by_{by}"])
    yield rate
    losses = GaugeMetricFamily("liqbot_capture_losses", "Liquidations lost over the last day, by reason", labels=["reason"])
    for reason, n in summary["losses"]:
        losses.add_metric([reason], n)
    yield losses


_started: set[int] = set()


def serve(port: int) -> None:
    """Expose /metrics on `port` (once per process; a busy port is logged, not fatal)."""
    if not port or port in _started:
        return
    try:
        REGISTRY.register(LiqbotCollector())
        start_http_server(port, addr="127.0.0.1")
        _started.add(port)
        log.info("metrics on http://127.0.0.1:%d/metrics", port)
    except (OSError, ValueError) as exc:
        log.warning("metrics not served on port %d: %s", port, exc)
