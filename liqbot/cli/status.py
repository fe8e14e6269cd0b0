"""`liqbot status`: queue depths, live workers, the breaker, the producer's connection and lag,
the capture rate, parked users, recent liquidations."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from liqbot.cli.ops import MarketOpt, _settings

console = Console()
PARKED_SHOWN = 5


def gather() -> dict:
    """Everything `status` shows, as plain data (also what the metrics exporter reads)."""
    from liqbot.runtime import runtime
    from liqbot.store.captures import capture_summary
    from liqbot.store.db import Attempt

    rt = runtime()
    r, key = rt.state.r, rt.state.key
    now = time.time()
    out: dict = {"queues": {q: rt.state.queue_depth(q) for q in ("priority", "default")}}
    ttl = rt.settings.priority_heartbeat_ttl_secs
    out["priority_workers"] = [w for w, ts in r.zrange(key("workers:priority"), 0, -1, withscores=True) if ts > now - ttl]
    out["breaker"] = rt.breaker.status()
    producer = r.hgetall(key("producer", "status"))
    try:  # RPC_URL is optional here: without it, no head and no lag
        head = int(rt.rpc.call("eth_blockNumber"), 16) if rt.settings.rpc_url is not None else None
    except Exception:
        head = None
    if producer:
        producer["lag_blocks"] = head - int(producer.get("cursor", 0)) - 1 if head is not None else None
        producer["age_secs"] = round(now - float(producer.get("since", now)), 1)
    out["producer"] = producer or {"state": "not running"}
    out["head"] = head
    out["counters"] = rt.state.counters()
    out["mirror"] = rt.state.mirror_audit()
    count, some = rt.state.parked(PARKED_SHOWN)
    out["parked"] = {"count": count, "users": [{"user": u, "reason": why, "since": at} for u, why, at in some]}
    dead, newest = rt.state.dead_letters(1)
    out["dead_letters"] = {"count": dead, "newest": newest[0] if newest else None}
    with rt.sessions() as s:
        out["capture"] = capture_summary(s, now)
        out["recent"] = [
            {"user": a.user, "path": a.path, "outcome": a.outcome, "latency_ms": a.latency_ms, "tx": a.tx_hash,
             "profit": a.realised_profit_base if a.realised_profit_base is not None else a.expected_profit_base,
             "at": a.sent_at or a.started_at, "reason": a.reason}
            for a in s.scalars(select(Attempt).order_by(Attempt.id.desc()).limit(10))
        ]
    return out


def status(market: MarketOpt = None) -> None:
    """Queue depths, workers, breaker, the producer's connection and block lag, parked users, recent
    liquidations."""
    settings = _settings(market)
    info = gather()
    head = info["head"] if info["head"] is not None else \
        f"unknown ({'node unreachable' if settings.rpc_url else 'RPC_URL unset'})"
    p = info["producer"]
    console.print(f"queues: priority {info['queues']['priority']}, default {info['queues']['default']}   "
                  f"priority workers alive: {len(info['priority_workers'])}   head: {head}")
    console.print(f"producer: [bold]{p.get('state')}[/]" + (f" for {p['age_secs']} s, lag {p.get('lag_blocks')} blocks, "
                  f"reconnects {p.get('reconnects')}, buffered {p.get('buffered')}" if "age_secs" in p else "")
                  + (f", last error: {p['error']}" if p.get("error") else ""))
    b = info["breaker"]
    console.print(f"breaker: [bold]{b['state']}[/]" + (f" ({b['cause']})" if b["cause"] else ""))
    m = info["mirror"]
    if m:
        ago = time.time() - float(m.get("at", 0))
        console.print(f"mirror: drift [bold]{m['drift']}[/] of {m['compared']} users at block {m['block']} "
                      f"(compared with the chain {ago:.0f} s ago in {float(m['secs']):.2f} s; {m['skipped']} not compared)")
    else:
        console.print("mirror: not compared with the chain yet (the producer does it at the full rescan's interval)")
    console.print(capture_line(info["capture"]))
    if info["counters"]:
        console.print("counters: " + ", ".join(f"{k} {v}" for k, v in sorted(info["counters"].items())))
    parked = info["parked"]
    console.print(f"parked users: {parked['count']} (until an event or a price move touches them)")
    for entry in parked["users"]:
        since = datetime.fromtimestamp(entry["since"], UTC).strftime("%H:%M:%S")
        console.print(f"  {entry['user']}  since {since}  {entry['reason']}")
    console.print(dead_letters_line(info["dead_letters"]))
    table = Table("when", "user", "path", "outcome", "detect->send", "profit (USD)", "tx / reason", box=None)
    for a in info["recent"]:
        when = datetime.fromtimestamp(a["at"], UTC).strftime("%H:%M:%S") if a["at"] else ""
        table.add_row(when, a["user"][:10] + "…", a["path"], a["outcome"],
                      f"{a['latency_ms']:.0f} ms" if a["latency_ms"] else "",
                      f"{a['profit'] / 1e8:,.2f}" if a["profit"] is not None else "", (a["tx"] or a["reason"] or "")[:24])
    console.print(table)


def dead_letters_line(dead: dict) -> str:
    """'dead letters: 2 (newest: priority b'not json')': messages the broker set aside as undecodable."""
    from rich.markup import escape

    from liqbot.broker import raw_of

    newest = dead["newest"]
    if not newest:
        return f"dead letters: {dead['count']}"
    return f"dead letters: {dead['count']} (newest: {escape(newest['queue'])} {escape(repr(raw_of(newest)[:40]))})"


def capture_line(capture: dict) -> str:
    """'capture: last hour 12/13 (92%), 97% of bonus; last day ...; losses: not detected 1, ...'"""
    def window(rate: dict) -> str:
        if not rate["total"]:
            return "no liquidations"
        text = f"{rate['ours']}/{rate['total']} ({rate['by_count']:.0%})"
        return text + (f", {rate['by_bonus']:.0%} of bonus" if rate["by_bonus"] is not None else "")

    rates = capture["rates"]
    losses = ", ".join(f"{reason} {n}" for reason, n in capture["losses"]) or "none"
    return f"capture: last hour {window(rates['1h'])}; last day {window(rates['24h'])}; losses: {losses}"
