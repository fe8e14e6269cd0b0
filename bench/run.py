"""`make bench`: the priority pipeline measured on the devnet, fast path against WS_FAST_PATH=false.

    python -m bench.run [--borrowers 2000] [--backlog 100000] [--pct -8] [--name NAME]

Phases: (1) the priority lane's enqueue-to-start latency without and with a backlog of BACKLOG
`update_position` tasks on the default queue; (2) a price move with the fast path on, the backlog in
place; (3) the same move from the same chain state with the fast path off (beat scanner and
update_position only); (4) the scanner's rate against a raw JSON-RPC batch at 10k and 100k users;
(5) every process's peak memory; (events) the same move and a probe of the lane with task events off,
on, and on with Flower consuming them (TASK_EVENTS: what Flower's Tasks page costs the lane).
Writes bench/results/NAME.json and NAME.png and updates bench/RESULTS.md. Everything it starts is
stopped when it ends (or on Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from liqbot.devnet import Devnet, move_price, seed_borrowers
from liqbot.devnet.stack import DEFAULT_WORKER, PRIORITY_WORKER, Stack
from liqbot.errors import RpcError

ROOT = Path(__file__).resolve().parents[1]
ALL_PHASES = ("isolation", "fast", "slow", "flash", "events", "scanner", "mirror", "race")
EVENT_ARMS = (("off", False, False), ("on", True, False), ("on+flower", True, True))  # label, TASK_EVENTS, Flower
console = Console()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": pct(values, 50), "p90": pct(values, 90), "p99": pct(values, 99),
            "max": max(values) if values else float("nan"), "mean": statistics.fmean(values) if values else float("nan")}


def bar(label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="liqbot-bench-"))
        self.dn = Devnet.start()
        self.stack = Stack(self.work)
        self.results: dict = {"args": vars(args), "machine": machine()}

    # --- plumbing --------------------------------------------------------------------------------
    def configure(self, db: str, **env: str) -> None:
        market = self.work / "market.json"
        self.dn.market.save(market)
        values = {"MARKET_FILE": str(market), "DATABASE_URL": f"sqlite:///{self.work / db}", "LOG_LEVEL": "INFO",
                  "SCAN_INTERVAL_SECS": "2", "FULL_RESCAN_INTERVAL_SECS": "10", "DEDUPE_WINDOW_SECS": "2", **env}
        self.stack.env.update(values)
        os.environ.update(self.stack.env)
        from tests.integration.conftest import reset_caches

        reset_caches()
        from liqbot.celery import app

        app.conf.broker_url = self.stack.env["REDIS_URL"]

    def flash_liquidator(self) -> str:
        """Deploy FlashLiquidator, owned by the liquidator, and send the liquidator's every token away."""
        from liqbot.chain import aave
        from liqbot.devnet import artifacts
        from liqbot.devnet.txs import TxSender

        m, rpc = self.dn.market, self.dn.rpc
        me = m.account("liquidator").address
        tx = TxSender(rpc)
        address = tx.deploy(me, artifacts.ours("FlashLiquidator"), m.provider, m.contracts["SwapRouter"])
        for r in m.reserves.values():
            held = aave.BALANCE_OF.decode(rpc.eth_call(r.address, aave.BALANCE_OF.calldata(me)))
            if held:
                tx.call(me, r.address, aave.TRANSFER, m.account("treasury").address, held)
        tx.settle()
        return address

    def rt(self):
        from liqbot.runtime import runtime

        return runtime()

    def backlog(self, n: int, users: list[str]) -> None:
        from liqbot.celery import app
        from liqbot.tasks.positions import update_position

        with bar(f"backlog of {n:,} update_position") as b, app.producer_or_acquire() as producer:
            task = b.add_task("backlog", total=n)
            for i in range(n):
                update_position.apply_async((users[i % len(users)], 0), queue="default", producer=producer)
                if i % 1000 == 999:
                    b.advance(task, 1000)
            b.update(task, completed=n)

    def attempt_count(self) -> int:
        from sqlalchemy import func, select

        from liqbot.store.db import Attempt

        with self.rt().sessions() as s:
            return s.scalar(select(func.count()).select_from(Attempt)) or 0

    def attempts(self) -> list:
        from sqlalchemy import select

        from liqbot.store.db import Attempt

        with self.rt().sessions() as s:
            return list(s.scalars(select(Attempt).order_by(Attempt.id)))

    # --- phase 1: the lane's isolation -----------------------------------------------------------
    def probe(self, label: str, users: list[str], n: int, gap: float = 0.02, settle: bool = False) -> list[float]:
        """`n` liquidation tasks for healthy users, `gap` seconds apart, each detected as it is enqueued:
        the lane's enqueue -> start (= detection -> start) in ms. With `settle`, each is sent `gap` after the
        previous one is recorded: the lane is idle at every send, so a loaded machine's slower tasks cannot
        turn the hand-over's latency into queueing."""
        from liqbot.tasks.liquidate import check_and_liquidate

        before = len(self.attempts())
        with bar(label) as b:
            task = b.add_task(label, total=n)
            for i, u in enumerate(users[:n]):
                now = time.time()
                check_and_liquidate.apply_async((u, 0, now, "bench", now), queue="priority")
                deadline = now + 10
                while settle and self.attempt_count() < before + i + 1 and time.time() < deadline:
                    time.sleep(0.005)
                time.sleep(gap)
                b.advance(task)
        deadline = time.time() + 60
        while len(self.attempts()) < before + n and time.time() < deadline:
            time.sleep(0.2)
        rows = self.attempts()[before:]
        return [(a.started_at - a.enqueued_at) * 1000 for a in rows if a.started_at and a.enqueued_at]

    def isolation(self, healthy: list[str], n: int = 500) -> dict:
        quiet = self.probe("priority lane, idle default queue", healthy, n)
        self.backlog(self.args.backlog, healthy)
        busy = self.probe(f"priority lane, {self.args.backlog:,} tasks waiting on default", healthy, n)
        waiting = self.rt().state.queue_depth("default")
        out = {"without_backlog_ms": summary(quiet), "with_backlog_ms": summary(busy), "default_waiting_after": waiting,
               "isolation_ratio_p99": pct(busy, 99) / pct(quiet, 99), "raw": {"quiet": quiet, "busy": busy}}
        console.print(f"enqueue->start p99: {pct(quiet, 99):.2f} ms idle, {pct(busy, 99):.2f} ms with the backlog "
                      f"(ratio {out['isolation_ratio_p99']:.2f}; {waiting:,} still waiting)")
        return out

    # --- phases 2 and 3: a price move, end to end ----------------------------------------------
    def crash(self, label: str, borrowers: list[str], timeout: float) -> dict:
        """Move the price in `--steps` oracle updates (a Chainlink feed moves in deviation-threshold
        steps, not at once) and follow every liquidation from the update that made it liquidatable."""
        from liqbot.chain import aave
        from liqbot.chain.reader import account_data

        rpc, pool = self.dn.rpc, self.dn.market.pool
        steps: list[tuple[int, float]] = []  # (block, when the update was sent: anvil mines it on arrival)
        step_pct = ((1 + self.args.pct / 100) ** (1 / self.args.steps) - 1) * 100
        mined: dict[str, tuple[float, int]] = {}
        stop = threading.Event()
        first_block = int(rpc.call("eth_blockNumber"), 16)

        def watch() -> None:  # when each liquidation shows up on chain, at ~50 ms resolution
            seen = first_block  # only new blocks each time: the watcher must not load the node it measures
            while not stop.is_set():
                try:
                    head = int(rpc.call("eth_blockNumber"), 16)
                    logs = rpc.call("eth_getLogs", {"fromBlock": hex(seen), "toBlock": hex(head), "address": pool,
                                                    "topics": [aave.LIQUIDATION_CALL_EVENT.topic0]}) if head >= seen else []
                except RpcError:
                    time.sleep(0.05)
                    continue
                now = time.time()
                for lg in logs:
                    mined.setdefault(lg["transactionHash"], (now, int(lg["blockNumber"], 16)))
                seen = max(seen, head + 1)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for _ in range(self.args.steps):
            at = time.time()
            steps.append((move_price(self.dn.market, self.args.asset, pct=step_pct).block, at))
            time.sleep(self.args.step_secs)
        after = account_data(rpc, pool, borrowers, block=hex(steps[-1][0]))
        targets = {u for u, a in after.items() if a.liquidatable or a.user in {x.user for x in self.attempts() if x.tx_hash}}
        console.print(f"[bold]{label}[/]: {self.args.asset} {self.args.pct:+}% in {self.args.steps} updates "
                      f"(blocks {steps[0][0]}-{steps[-1][0]}): {len(targets)} of {len(borrowers)} borrowers liquidatable")
        users_done: set[str] = set()
        deadline = time.time() + timeout
        with bar(label) as b:
            task = b.add_task(label, total=len(targets))
            while users_done < targets and time.time() < deadline:
                users_done = {a.user for a in self.attempts() if a.tx_hash and a.tx_hash in mined} & targets
                b.update(task, completed=len(users_done))
                time.sleep(0.25)
        stop.set()
        watcher.join(2)
        first: dict[str, object] = {}
        recovered = 0
        for a in self.attempts():
            if a.tx_hash and a.started_at is None:
                recovered += 1  # recorded from the chain, not by its worker: no stage times to report
            elif a.tx_hash and a.user in targets and a.user not in first:
                first[a.user] = a
        if recovered:
            console.print(f"[yellow]{recovered} liquidation(s) recorded from the chain rather than by their worker[/]")
        rows = []
        for a in first.values():
            block, event_at = max((s for s in steps if s[0] <= max(a.detected_block, steps[0][0])), key=lambda s: s[0])
            m_at, m_block = mined.get(a.tx_hash, (None, None))
            rows.append({"user": a.user, "path": a.path, "price_block": block,
                         "detected_ms": (a.detected_at - event_at) * 1000,
                         "enqueued_ms": ((a.enqueued_at or a.detected_at) - event_at) * 1000,
                         "started_ms": (a.started_at - event_at) * 1000,
                         "sent_ms": (a.sent_at - event_at) * 1000,
                         "mined_ms": (m_at - event_at) * 1000 if m_at else None,
                         "detect_to_send_ms": a.latency_ms, "blocks": (m_block - block) if m_block else None})
        out = {"liquidatable": len(targets), "liquidated": len(first), "timed_out": users_done < targets,
               "detect_to_send_ms": summary([r["detect_to_send_ms"] for r in rows]),
               "event_to_detect_ms": summary([r["detected_ms"] for r in rows]),
               "detect_to_route_ms": summary([r["enqueued_ms"] - r["detected_ms"] for r in rows]),
               "event_to_send_ms": summary([r["sent_ms"] for r in rows]),
               "event_to_mined_ms": summary([r["mined_ms"] for r in rows if r["mined_ms"] is not None]),
               "enqueue_to_start_ms": summary([r["started_ms"] - r["enqueued_ms"] for r in rows]),
               "start_to_send_ms": summary([r["sent_ms"] - r["started_ms"] for r in rows]),
               "blocks_after_price": summary([r["blocks"] for r in rows if r["blocks"] is not None]),
               "paths": sorted({r["path"] for r in rows}), "rows": rows,
               "routes": dict(Counter(a.route or "inventory" for a in first.values())), "gas": self.gas(first.values())}
        console.print(f"  detection->send p50 {out['detect_to_send_ms']['p50']:.1f} ms, p99 "
                      f"{out['detect_to_send_ms']['p99']:.1f} ms; price update->sent p50 {out['event_to_send_ms']['p50']:.1f} ms;"
                      f" {len(first)}/{len(targets)} liquidated")
        return out

    def gas(self, attempts) -> dict:
        """Gas used per mined liquidation, from the receipts."""
        hashes = [a.tx_hash for a in attempts if a.tx_hash]
        receipts = self.dn.rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes]) if hashes else []
        return summary([int(r["gasUsed"], 16) for r in receipts if r])

    def run_pipeline(self, label: str, borrowers: list[str], healthy: list[str], fast: bool, timeout: float,
                     flash: bool = False, flower: bool = False) -> dict:
        """One crash through the whole stack; with `flash`, our FlashLiquidator is deployed and the liquidator
        account holds no tokens at all, so every liquidation goes by flash loan; with `flower`, Flower
        watches the stack (consuming its events, as an operator runs it)."""
        st = self.stack
        for name in list(st.procs):
            if name != "redis":
                st.stop(name)
        self.rt().state.r.flushdb()
        self.stack.env.pop("LIQUIDATOR_CONTRACT", None)
        os.environ.pop("LIQUIDATOR_CONTRACT", None)
        extra = {"LIQUIDATOR_CONTRACT": self.flash_liquidator()} if flash else {}
        self.configure(f"{label}.sqlite", WS_FAST_PATH="true" if fast else "false", **extra)
        for i in range(self.args.priority_workers):  # the lane at a higher CPU priority than bookkeeping
            st.worker(f"priority{i or ''}", PRIORITY_WORKER, wait=True, nice=-5)
        st.worker("default", DEFAULT_WORKER, wait=True, nice=10)
        st.beat()
        if flower:
            from liqbot.devnet.anvil import free_port

            port = free_port()
            proc = st.celery("flower", "flower", f"--port={port}", "--address=127.0.0.1")
            st.wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthcheck"), "flower", 60, proc)
        self.backlog(self.args.backlog, healthy)
        st.producer()
        time.sleep(2)
        result = self.crash(label, borrowers, timeout)
        result["peak_memory_mb"] = peak_memory(st)
        return result

    # --- the events phase: what task events cost the lane ---------------------------------------
    def events_arm(self, label: str, rnd: int, on: bool, flower: bool, borrowers: list[str], healthy: list[str],
                   n: int = 200) -> dict:
        """One arm of the events phase: the fast-path crash (run_pipeline) with TASK_EVENTS set for every
        process (this one publishes the backlog and the probe: its `task-sent` events follow it too), then
        `n` probes of the lane, one at a time (latency, not queueing), the crash's bookkeeping still running."""
        from liqbot.celery import app

        self.fresh_logs(f"before-{label}-{rnd}")
        value = "true" if on else "false"
        self.stack.env["TASK_EVENTS"] = os.environ["TASK_EVENTS"] = value
        app.conf.task_send_sent_event = on
        load = os.getloadavg()[0]
        result = self.run_pipeline(f"events-{label}-{rnd}", borrowers, healthy, True, 600, flower=flower)
        rows = result["rows"]
        probe = self.probe(f"lane probe, task events {label}", healthy, n, gap=0.02, settle=True)
        out = {"arm": label, "round": rnd, "task_events": on, "flower": flower, "load_before": load,
               "liquidated": result["liquidated"], "liquidatable": result["liquidatable"],
               "detect_to_enqueue": [r["enqueued_ms"] - r["detected_ms"] for r in rows],
               "detect_to_start": [r["started_ms"] - r["detected_ms"] for r in rows],
               "detect_to_send": [r["detect_to_send_ms"] for r in rows], "probe_detect_to_start": probe}
        if not on:  # workers started without task events: they can be switched on and off remotely
            out["paired"] = self.paired_probe(healthy)
        console.print(f"  task events {label} (round {rnd + 1}, load {load:.1f}): crash detection->start p50 "
                      f"{pct(out['detect_to_start'], 50):.1f} ms, detection->send p50 {pct(out['detect_to_send'], 50):.1f} "
                      f"ms; probe detection->start p50 {pct(probe, 50):.2f} ms, p99 {pct(probe, 99):.2f} ms")
        return out

    def paired_probe(self, users: list[str], blocks: int = 16, per_block: int = 20) -> dict[str, list[float]]:
        """Probes of the lane in blocks of `per_block`, task events switched on and off between blocks on the
        running workers (celery's enable_events / disable_events control commands, this process's task-sent
        events with them): both sides share the machine's load at every moment, so their difference is the
        events' own cost, finer than two runs minutes apart can show on a shared machine."""
        from liqbot.celery import app

        out: dict[str, list[float]] = {"off": [], "on": []}
        for i in range(blocks):
            on = i % 2 == 1
            (app.control.enable_events if on else app.control.disable_events)()
            app.conf.task_send_sent_event = on
            time.sleep(0.3)  # the worker applies the command between two messages
            out["on" if on else "off"] += self.probe(f"paired probe {i + 1}/{blocks}, events {'on' if on else 'off'}",
                                                     users, per_block, gap=0.02, settle=True)
        app.control.disable_events()
        app.conf.task_send_sent_event = False
        console.print(f"  paired probe: detection->start p50 {pct(out['off'], 50):.2f} ms events off, "
                      f"{pct(out['on'], 50):.2f} ms on ({len(out['off'])} / {len(out['on'])} tasks)")
        return out

    def fresh_logs(self, tag: str) -> None:
        """Stop every process but Redis and move their logs aside: a process started again under the same
        name must not find its predecessor's "ready" line and be taken for ready before it is."""
        names = [n for n in self.stack.procs if n != "redis"]
        for name in names:
            self.stack.stop(name)
            log = self.stack.workdir / f"{name}.log"
            if log.exists():
                log.rename(log.with_name(f"{name}.{tag}.log"))

    # --- phase 4: the scanner's rate ------------------------------------------------------------
    def scanner(self, sizes: list[int], rounds: int = 5) -> dict:
        """Our scanner against a raw JSON-RPC batch of the same calls, alternating `rounds` times and
        taking each side's median: one pass of 10,000 users lasts under half a second, and a single
        pair of passes swung from 70% to 102% between runs on this shared machine."""
        from eth_utils import to_checksum_address

        from liqbot.chain.reader import account_calldata, account_data

        rt = self.rt()
        pool, url, batch = rt.market.pool, rt.settings.rpc_url, rt.settings.scan_batch_size
        session = requests.Session()

        def raw_pass(users: list[str]) -> None:
            for start in range(0, len(users), batch):
                payload = [{"jsonrpc": "2.0", "id": i, "method": "eth_call",
                            "params": [{"to": pool, "data": account_calldata(u)}, "latest"]}
                           for i, u in enumerate(users[start : start + batch])]
                session.post(url, data=json.dumps(payload), headers={"content-type": "application/json"}).json()

        def ours_pass(users: list[str]) -> None:
            assert len(account_data(rt.rpc, pool, users, batch)) == len(users)

        def rate(fn, users: list[str]) -> float:
            t0 = time.perf_counter()
            fn(users)
            return len(users) / (time.perf_counter() - t0)

        out = {}
        for n in sizes:
            users = [to_checksum_address("0x" + random.Random(i).randbytes(20).hex()) for i in range(n)]
            raws, ours = [], []
            for _ in range(rounds):
                raws.append(rate(raw_pass, users))
                ours.append(rate(ours_pass, users))
            raw, mine = statistics.median(raws), statistics.median(ours)
            out[str(n)] = {"raw_users_per_s": raw, "scanner_users_per_s": mine, "ratio": mine / raw, "rounds": rounds}
            console.print(f"scanner at {n:,} users: {mine:,.0f}/s vs raw JSON-RPC batch {raw:,.0f}/s ({mine / raw:.0%}, "
                          f"medians of {rounds} alternating passes)")
        return out

    def close(self) -> None:
        self.stack.stop_all()
        self.dn.stop()


def peak_memory(stack: Stack) -> dict[str, float]:
    """VmHWM of each process and its children (prefork pools), in MB."""
    out = {}
    for name, proc in stack.procs.items():
        pids = [proc.popen.pid]
        try:
            children = Path(f"/proc/{proc.popen.pid}/task/{proc.popen.pid}/children").read_text().split()
            pids += [int(c) for c in children]
        except OSError:
            pass
        peak = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak += int(line.split()[1])
            except OSError:
                continue
        out[name] = round(peak / 1024, 1)
    return out


def machine() -> dict:
    mem = next((ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")), "?")
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu": cpu, "mem_gib": round(int(mem) / 2**20, 1), "python": platform.python_version(),
            "platform": platform.platform()}


EVENT_MEASURES = ("detect_to_enqueue", "detect_to_start", "detect_to_send", "probe_detect_to_start")


def events_summary(runs: list[dict]) -> dict:
    """Per arm: each measure pooled over the rounds (ms), its p50 in each round (the noise), and its
    p50 / p99 minus the events-off arm's, all from the same run."""
    arms: dict[str, dict] = {}
    for label, *_ in EVENT_ARMS:
        mine = [r for r in runs if r["arm"] == label]
        arms[label] = {k + "_ms": summary([v for r in mine for v in r[k]]) for k in EVENT_MEASURES}
        arms[label]["round_p50s_ms"] = {k: [pct(r[k], 50) for r in mine] for k in EVENT_MEASURES}
        arms[label]["load_before"] = [r["load_before"] for r in mine]
    base = arms["off"]
    cost = {label: {k: {q: arm[k + "_ms"][q] - base[k + "_ms"][q] for q in ("p50", "p99")} for k in EVENT_MEASURES}
            for label, arm in arms.items() if label != "off"}
    paired = {side: [v for r in runs for v in r.get("paired", {}).get(side, [])] for side in ("off", "on")}
    pairs = {side: summary(vals) for side, vals in paired.items()}
    cost["paired"] = {"probe_detect_to_start": {q: pairs["on"][q] - pairs["off"][q] for q in ("p50", "p99")}}
    return {"arms": arms, "paired_probe_ms": pairs, "cost_vs_off_ms": cost, "runs": runs}


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--borrowers", type=int, default=2000)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--asset", default="WETH")
    parser.add_argument("--pct", type=float, default=-8, help="the whole move, in percent")
    parser.add_argument("--steps", type=int, default=8, help="oracle updates the move arrives in (1: one jump)")
    parser.add_argument("--step-secs", type=float, default=3.0, help="seconds between two updates")
    parser.add_argument("--scanner-users", default="10000,100000")
    parser.add_argument("--slow-timeout", type=float, default=1800)
    parser.add_argument("--priority-workers", type=int, default=1, help="priority worker processes (-c 1 each)")
    parser.add_argument("--event-rounds", type=int, default=2, help="rounds of the events phase's arms (off, on, "
                        "on with Flower), interleaved")
    parser.add_argument("--mirror-users", type=int, default=100_000, help="users of the mirror phase's synthetic market")
    parser.add_argument("--phases", default=",".join(ALL_PHASES),
                        help="comma-separated subset, for iterating on one figure (RESULTS.md needs all)")
    parser.add_argument("--name", default="default")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    if unknown := phases - set(ALL_PHASES):
        parser.error(f"--phases: unknown phase(s) {', '.join(sorted(unknown))}")
    sys.path.insert(0, str(ROOT))
    signal.signal(signal.SIGTERM, _interrupt)  # `finally` then stops everything we started
    bench = Bench(args)
    try:
        bench.stack.redis()
        bench.configure("isolation.sqlite")
        with bar(f"seeding {args.borrowers:,} borrowers") as b:
            task = b.add_task("seed", total=args.borrowers)
            borrowers = [p.address for p in seed_borrowers(bench.dn.market, args.borrowers, seed=2024,
                                                           progress=lambda k: b.advance(task, k)).borrowers]
        snap = bench.dn.snapshot()
        # The backlog is bookkeeping of users the price move leaves healthy: a backlog of the very users
        # being liquidated would re-detect them by itself and flatter the slow path.
        from liqbot.chain.reader import account_data

        move_price(bench.dn.market, args.asset, pct=args.pct)
        after = account_data(bench.dn.rpc, bench.dn.market.pool, borrowers)
        bench.dn.revert(snap)
        snap = bench.dn.snapshot()
        healthy = [u for u in borrowers if not after[u].liquidatable]
        st = bench.stack
        st.worker("priority", PRIORITY_WORKER, nice=-5)
        st.worker("default", DEFAULT_WORKER, nice=10)
        if "isolation" in phases:
            bench.results["isolation"] = bench.isolation(healthy)
        for label in ("fast", "slow", "flash"):
            if label in phases:
                bench.dn.revert(snap)
                snap = bench.dn.snapshot()
                bench.results[label] = bench.run_pipeline(label, borrowers, healthy, label != "slow",
                                                          args.slow_timeout if label == "slow" else 600, label == "flash")
        if "events" in phases:  # the same crash with task events off, on, on with Flower, arms interleaved
            runs = []
            for rnd in range(args.event_rounds):
                for label, on, flower in EVENT_ARMS:
                    bench.dn.revert(snap)
                    snap = bench.dn.snapshot()
                    runs.append(bench.events_arm(label, rnd, on, flower, borrowers, healthy))
            bench.stack.env.pop("TASK_EVENTS", None)
            os.environ.pop("TASK_EVENTS", None)
            bench.results["events"] = events_summary(runs)
            for label, cost in bench.results["events"]["cost_vs_off_ms"].items():
                figures = (f"{k.removesuffix('_ms')} {c['p50']:+.2f} / {c['p99']:+.2f} ms" for k, c in cost.items())
                console.print(f"task events {label} vs off, p50 / p99: " + "; ".join(figures))
        if {"fast", "slow"} <= phases:
            f, s = bench.results["fast"]["detect_to_send_ms"], bench.results["slow"]["detect_to_send_ms"]
            bench.results["fast_vs_slow_p50"] = s["p50"] / f["p50"]
            fe, se = bench.results["fast"]["event_to_send_ms"], bench.results["slow"]["event_to_send_ms"]
            bench.results["fast_vs_slow_event_to_send_p50"] = se["p50"] / fe["p50"]
            console.print(f"fast path {bench.results['fast_vs_slow_event_to_send_p50']:.1f}x faster than "
                          "WS_FAST_PATH=false (chain event -> send, p50)")
        if "scanner" in phases:
            bench.results["scanner"] = bench.scanner([int(x) for x in args.scanner_users.split(",") if x])
        if "mirror" in phases:  # the producer's screen alone, on a synthetic market (bench/mirror.py)
            from bench.mirror import measure

            bench.stack.stop_all()
            bench.results["mirror"] = measure(users=args.mirror_users, say=console.print)
        if "race" in phases:  # against a compact rival (bench/race.py): automine, then 2 s blocks with the backrun
            from bench import race

            bench.close()
            os.environ.pop("LIQUIDATOR_CONTRACT", None)  # the flash phase's contract is on the bench's devnet only
            rargs = race.parser().parse_args([])
            rargs.cli_error = race.cli_error()
            bench.results["race"] = [race.run_mode(rargs, bt) for bt in (0.0, 2.0)]
    except Exception:  # a phase failed: what the others measured is still written (a partial run)
        console.print_exception()
        phases = set()
    finally:
        bench.close()
    from bench.report import write

    if phases == set(ALL_PHASES):
        write(bench.results, args.name)
    else:  # a partial run: raw figures only, RESULTS.md keeps the last complete one
        out = ROOT / "bench" / "results" / f"{args.name}.json"
        out.write_text(json.dumps(bench.results, indent=1, default=float))
        console.print(f"partial run ({args.phases}): wrote {out}")


if __name__ == "__main__":
    main()
