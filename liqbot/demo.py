"""`liqbot demo`: the whole stack on a fresh devnet, liquidating live.

Starts Redis (its own redis-server, so it never touches another one), the devnet, a priority worker,
a default worker, beat, the producer and Flower; seeds borrowers, crashes prices, and shows each
liquidation as it lands. Ctrl-C (or --duration) stops everything it started."""

from __future__ import annotations

import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from liqbot.devnet import Devnet, move_price, seed_borrowers
from liqbot.devnet.anvil import free_port, set_block_time
from liqbot.devnet.stack import DEFAULT_WORKER, PRIORITY_WORKER, Stack
from liqbot.errors import DevnetError

console = Console()
CRASHES = (("WETH", -25), ("WBTC", -30), ("WETH", -15))


def run_demo(borrowers: int = 200, duration: float | None = None, flower_port: int | None = None,
             block_time: int = 2) -> int:
    """With `block_time` (seconds; 0: a block per transaction) transactions wait in a pending pool as on a
    real chain, and the producer back-runs each price crash in its own block (MEMPOOL_BACKRUN)."""
    if shutil.which("redis-server") is None:
        raise DevnetError("the demo needs redis-server (apt-get install redis-server, or run `make setup` on Debian)")
    work = Path(tempfile.mkdtemp(prefix="liqbot-demo-"))
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    console.print(f"[bold]liqbot demo[/] (logs in {work})")
    dn = Devnet.start(log_path=work / "anvil.log")
    stack = Stack(work)
    password = secrets.token_urlsafe(9)
    flower_port = flower_port or free_port()
    metrics_port = free_port()
    try:
        dn.market.save(work / "market.json")
        stack.redis()
        stack.env.update(MARKET_FILE=str(work / "market.json"), DATABASE_URL=f"sqlite:///{work / 'liqbot.sqlite'}",
                         SCAN_INTERVAL_SECS="2", FULL_RESCAN_INTERVAL_SECS="10", METRICS_PORT=str(metrics_port),
                         MEMPOOL_BACKRUN="true" if block_time else "false")
        console.print(f"devnet at {dn.market.rpc_url} (deployed in {dn.started_in_secs:.2f} s), "
                      f"Redis at {stack.env['REDIS_URL']}")
        with console.status("starting workers, beat, producer and Flower"):
            stack.worker("worker-priority", PRIORITY_WORKER)
            stack.worker("worker-default", DEFAULT_WORKER)
            stack.beat()
            stack.celery("flower", "flower", f"--port={flower_port}", "--address=127.0.0.1", f"--basic-auth=liqbot:{password}")
        with console.status(f"seeding {borrowers} borrowers"):
            seed_borrowers(dn.market, borrowers, seed=7)
        if block_time:  # seeded under automine (fast); from now on a block every `block_time` seconds
            set_block_time(dn.rpc, block_time)
            console.print(f"a block every {block_time} s from now on; pending price updates are back-run")
        stack.producer()
        console.print(f"Flower: http://127.0.0.1:{flower_port}  (user liqbot, password {password})   "
                      f"metrics: http://127.0.0.1:{metrics_port}/metrics")
        return _live(dn, stack, work, duration, stop)
    finally:
        with console.status("stopping everything"):
            stack.stop_all()
            dn.stop()
        console.print("demo stopped; every process it started is gone")


def _live(dn: Devnet, stack: Stack, work: Path, duration: float | None, stop: dict) -> int:
    from sqlalchemy import select

    from liqbot.store.db import Attempt, session_factory

    sessions = session_factory(f"sqlite:///{work / 'liqbot.sqlite'}")
    started = time.monotonic()
    crashes = list(CRASHES)
    next_crash = started + 3
    events: list[str] = []
    sent = 0
    try:
        with Live(console=console, refresh_per_second=4) as live:
            while not stop["now"] and (duration is None or time.monotonic() - started < duration):
                if crashes and time.monotonic() >= next_crash:
                    asset, pct = crashes.pop(0)
                    m = move_price(dn.market, asset, pct=pct)
                    events.append(f"{time.strftime('%H:%M:%S')} {asset} {pct:+}% -> {m.new / 1e8:,.2f} USD at block {m.block}")
                    next_crash = time.monotonic() + 12
                with sessions() as s:
                    rows = list(s.scalars(select(Attempt).where(Attempt.tx_hash.is_not(None)).order_by(Attempt.id.desc())))
                sent = len(rows)
                live.update(_view(rows[:20], sent, events, stack))
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    console.print(f"{sent} liquidations sent")
    return sent


def _view(rows: list, sent: int, events: list[str], stack: Stack) -> Group:
    table = Table("user", "path", "detect->send", "profit (USD)", "outcome", "tx", title=f"liquidations ({sent})")
    for a in rows:
        profit = a.realised_profit_base if a.realised_profit_base is not None else a.expected_profit_base
        table.add_row(a.user[:12] + "…", ("⚡ " if a.path in ("fast", "backrun") else "") + a.path,
                      f"{a.latency_ms:.0f} ms" if a.latency_ms else "", f"{profit / 1e8:,.2f}" if profit is not None else "",
                      a.outcome, a.tx_hash[:18] + "…")
    alive = ", ".join(f"{n} {'up' if p.alive() else 'DOWN'}" for n, p in stack.procs.items())
    return Group(Panel("\n".join(events[-4:]) or "waiting for the first price crash…", title="prices"), table,
                 f"[dim]{alive}   Ctrl-C stops everything[/]")
