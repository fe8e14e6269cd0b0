"""`make race`: liqbot against a compact rival bot (bench/rival.py) on the same devnet, same price moves.

    python -m bench.race [--borrowers 60] [--steps 5] [--pct -15] [--block-time 0|2]

Per setup: a fresh devnet (deployed and seeded under automine; with a block time, switched to interval
mining afterwards with evm_setAutomine(false) + evm_setIntervalMining), liqbot started as
bench/run.py starts it (its own Redis, a priority worker at nice -5, a default worker at nice 10,
beat, the producer; WS_FAST_PATH=true) and the rival (`user9`, funded with every asset and approved
to the Pool). Once both are live the asset moves `--pct` in `--steps` oracle updates `--step-secs`
apart; when no liquidation has landed for `--quiet` seconds, every LiquidationCall since the first
update is read back: who liquidated each user first, the capture rate (liqbot first / users
liquidated), liquidations and reverted transactions of each account, blocks from the update that
made a user liquidatable to its first liquidation, and liqbot's attempt outcomes from its database.
Without --block-time both setups run, automine first. Writes bench/results/race-<mode>[-<tag>].json.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from liqbot.chain import aave
from liqbot.devnet import Devnet, move_price, seed_borrowers
from liqbot.devnet.deploy import LIQUIDATOR_USD, token_amount
from liqbot.devnet.market import DEFAULT_RESERVES
from liqbot.devnet.stack import DEFAULT_WORKER, PRIORITY_WORKER, Stack
from liqbot.devnet.txs import TxSender
from liqbot.execution import SENT_BY_PRODUCER

ROOT = Path(__file__).resolve().parents[1]
console = Console()
WAD = 10**18


def mode_name(block_time: float) -> str:
    return "automine" if not block_time else f"block-time-{block_time:g}"


def pcts(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    s = sorted(values)
    return {"n": len(s), "p50": s[len(s) // 2], "max": s[-1], "mean": round(statistics.fmean(s), 2)}


class Race:
    def __init__(self, args: argparse.Namespace, block_time: float):
        self.args, self.block_time, self.mode = args, block_time, mode_name(block_time)
        self.work = Path(tempfile.mkdtemp(prefix=f"liqbot-race-{self.mode}-"))
        self.dn = Devnet.start()  # automine: deploy and seed fast, interval mining (if any) switched on below
        self.stack = Stack(self.work)
        self.market_file = self.work / "market.json"
        self.dn.market.save(self.market_file)
        self.ours = self.dn.market.account("liquidator").address
        self.theirs = self.dn.market.account(args.rival_account).address

    def close(self) -> None:
        self.stack.stop_all()
        self.dn.stop()

    # --- set-up ---------------------------------------------------------------------------------
    def prepare(self) -> list[str]:
        m, rpc = self.dn.market, self.dn.rpc
        with console.status(f"{self.mode}: seeding {self.args.borrowers} borrowers"):
            borrowers = [p.address for p in seed_borrowers(m, self.args.borrowers, seed=self.args.seed).borrowers]
        # The rival gets the same inventory as liqbot's liquidator: 100 M USD of every asset, approved.
        tx = TxSender(rpc)
        deployer = m.account("deployer").address
        for spec in DEFAULT_RESERVES:
            if spec.symbol in m.reserves:
                tx.call(deployer, m.reserve(spec.symbol).address, aave.MINT_TO, self.theirs, token_amount(spec, LIQUIDATOR_USD))
        tx.settle()
        for r in m.reserves.values():
            tx.call(self.theirs, r.address, aave.APPROVE, m.pool, aave.UINT256_MAX)
        tx.settle()
        if self.block_time:
            rpc.call("evm_setAutomine", False)
            rpc.call("evm_setIntervalMining", int(self.block_time))
        return borrowers

    def start_processes(self) -> None:
        st = self.stack
        st.redis()
        st.env.update({"MARKET_FILE": str(self.market_file), "DATABASE_URL": f"sqlite:///{self.work / 'liqbot.sqlite'}",
                       "LOG_LEVEL": "INFO", "SCAN_INTERVAL_SECS": "2", "FULL_RESCAN_INTERVAL_SECS": "10",
                       "DEDUPE_WINDOW_SECS": "2", "WS_FAST_PATH": "true",
                       # with blocks, a pending pool: liqbot back-runs the pending updates (same block)
                       "MEMPOOL_BACKRUN": "true" if self.block_time and not self.args.no_backrun else "false"})
        with console.status(f"{self.mode}: starting liqbot and the rival"):
            st.worker("priority", PRIORITY_WORKER, wait=True, nice=-5)
            st.worker("default", DEFAULT_WORKER, wait=True, nice=10)
            st.beat()
            if self.args.cli_error is None:
                st.producer()
            else:  # the `liqbot` CLI does not build (a concurrent edit): the same producer, called directly
                proc = st.start("producer", [sys.executable, "-c", "from liqbot.cli.ops import producer; producer()"])
                st.wait_for(lambda: "producer live" in proc.text(), "producer", 60, proc)
            rival = st.start("rival", [sys.executable, "-m", "bench.rival", "--market", str(self.market_file),
                                       "--account", self.args.rival_account])
            st.wait_for(lambda: "rival live" in rival.text(), "rival", 60, rival)
            time.sleep(self.args.warmup)  # the producer learns the risk order beside its stream; beat scans once

    # --- the race ---------------------------------------------------------------------------------
    def crash(self) -> tuple[int, list[dict]]:
        rpc, a = self.dn.rpc, self.args
        start_block = int(rpc.call("eth_blockNumber"), 16) + 1
        step_pct = ((1 + a.pct / 100) ** (1 / a.steps) - 1) * 100
        steps = []
        t0 = time.time()
        for i in range(a.steps):
            time.sleep(max(0.0, t0 + i * a.step_secs - time.time()))
            sent = time.time()
            move = move_price(self.dn.market, a.asset, pct=step_pct)  # settles: waits for its block under interval mining
            steps.append({"block": move.block, "sent_at": sent, "mined_seen_at": time.time(), "price": move.new / 1e8})
            console.print(f"{self.mode}: step {i + 1}/{a.steps}: {a.asset} {move.old / 1e8:,.2f} -> {move.new / 1e8:,.2f} "
                          f"in block {move.block}")
        # settle: until no liquidation has landed for --quiet seconds (at least --quiet after the last step)
        last_count, last_change, deadline = -1, time.time(), time.time() + a.timeout
        while time.time() < deadline:
            n = len(self.liquidations(start_block))
            if n != last_count:
                last_count, last_change = n, time.time()
            elif time.time() - last_change >= a.quiet:
                break
            time.sleep(0.5)
        return start_block, steps

    # --- reading the outcome ----------------------------------------------------------------------
    def liquidations(self, start_block: int) -> list[dict]:
        logs = self.dn.rpc.call("eth_getLogs", {"address": self.dn.market.pool, "fromBlock": hex(start_block),
                                                "toBlock": "latest", "topics": [aave.LIQUIDATION_CALL_EVENT.topic0]})
        out = []
        for lg in logs:
            d = lg["data"][2:]
            out.append({"user": "0x" + lg["topics"][3][-40:].lower(), "liquidator": "0x" + d[64 * 2 + 24 : 64 * 3].lower(),
                        "block": int(lg["blockNumber"], 16), "index": int(lg["transactionIndex"], 16),
                        "log_index": int(lg["logIndex"], 16), "tx": lg["transactionHash"],
                        "debt_to_cover": int(d[:64], 16), "collateral": "0x" + lg["topics"][1][-40:]})
        return sorted(out, key=lambda x: (x["block"], x["index"], x["log_index"]))

    def transactions(self, start_block: int) -> dict[str, dict]:
        """Every transaction of either account since the start block, with its receipt status."""
        rpc = self.dn.rpc
        head = int(rpc.call("eth_blockNumber"), 16)
        who = {self.ours.lower(): "liqbot", self.theirs.lower(): "rival"}
        txs = []
        for lo in range(start_block, head + 1, 100):
            blocks = rpc.batch([("eth_getBlockByNumber", [hex(b), True]) for b in range(lo, min(head, lo + 99) + 1)])
            txs += [t for b in blocks for t in b["transactions"] if t["from"].lower() in who]
        receipts = []
        for lo in range(0, len(txs), 200):
            receipts += rpc.batch([("eth_getTransactionReceipt", [t["hash"]]) for t in txs[lo : lo + 200]])
        out = {name: {"txs": 0, "liquidation_calls": 0, "reverted": 0, "reverted_gas": 0, "reverted_blocks": [],
                      "max_fee_gwei": [], "tip_gwei": []}
               for name in who.values()}
        for t, r in zip(txs, receipts, strict=True):
            o = out[who[t["from"].lower()]]
            o["txs"] += 1
            if t["input"].startswith("0x" + aave.LIQUIDATION_CALL.selector.hex()):
                o["liquidation_calls"] += 1
                o["max_fee_gwei"].append(round(int(t.get("maxFeePerGas") or t["gasPrice"], 16) / 1e9, 3))
                o["tip_gwei"].append(round(int(t.get("maxPriorityFeePerGas") or "0x0", 16) / 1e9, 3))
            if int(r["status"], 16) == 0:
                o["reverted"] += 1
                o["reverted_gas"] += int(r["gasUsed"], 16)
                o["reverted_blocks"].append(int(r["blockNumber"], 16))
        return out

    def health_at(self, users: list[str], block: int) -> dict[str, tuple[int, int]]:
        raws = self.dn.rpc.batch([("eth_call", [{"to": self.dn.market.pool, "data": aave.GET_USER_ACCOUNT_DATA.calldata(u)},
                                                hex(block)]) for u in users])
        out = {}
        for u, raw in zip(users, raws, strict=True):
            d = aave.GET_USER_ACCOUNT_DATA.decode(raw)
            out[u.lower()] = (d[1], d[5])  # total debt, health factor
        return out

    def attempts(self) -> dict:
        db = self.work / "liqbot.sqlite"
        if not db.exists():
            return {"error": "no database"}
        con = sqlite3.connect(db)
        try:
            rows = con.execute("SELECT outcome, path, reason, latency_ms, tx_hash, started_at - detected_at FROM attempts"
                               ).fetchall()
        finally:
            con.close()
        reasons: Counter = Counter()
        for outcome, _, reason, *_ in rows:
            if outcome not in ("mined", "sent"):
                reasons[f"{outcome}: {_shorten(reason)}"] += 1
        lat = [r[3] for r in rows if r[3] is not None and r[4]]
        by_producer = sum(bool(r[4]) and (r[2] or "") == SENT_BY_PRODUCER for r in rows)
        return {"total": len(rows), "by_outcome": dict(Counter(r[0] for r in rows).most_common()),
                "by_path": dict(Counter(r[1] for r in rows).most_common()), "top_reasons": reasons.most_common(8),
                "detect_to_send_ms": pcts(lat),
                "sent_by": {"producer": by_producer, "worker": sum(bool(r[4]) for r in rows) - by_producer},
                "detect_to_start_ms": pcts([round(r[5] * 1000, 1) for r in rows if r[5] is not None])}

    def logs_report(self) -> dict:
        out = {}
        for name in ("priority", "default", "beat", "producer", "rival"):
            path = self.work / f"{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            lines = text.splitlines()
            out[name] = {"lines": len(lines), "flash": sum("⚡" in ln for ln in lines),
                         "warnings": sum(" WARNING" in ln or "WARNING/" in ln for ln in lines),
                         "errors": sum(" ERROR" in ln or "ERROR/" in ln or "Traceback" in ln for ln in lines),
                         "breaker": [ln[-300:] for ln in lines if re.search(r"breaker (open|half|trip|closed)|"
                                                                               r"circuit breaker", ln, re.I)][:10]}
            if name == "rival":
                lat = [float(m.group(1)) for m in re.finditer(r"event->send=([\d.]+)ms", text)]
                out[name]["sends"] = len(lat)
                out[name]["refused"] = text.count("REFUSED")
                out[name]["event_to_send_ms"] = pcts(lat)
        return out

    def report(self, borrowers: list[str], start_block: int, steps: list[dict]) -> dict:
        liqs = self.liquidations(start_block)
        names = {self.ours.lower(): "liqbot", self.theirs.lower(): "rival"}
        step_health = {s["block"]: self.health_at(borrowers, s["block"]) for s in steps}
        final = self.health_at(borrowers, int(self.dn.rpc.call("eth_blockNumber"), 16))
        became: dict[str, int] = {}  # user -> block of the first update after which HF < 1
        for s in steps:
            for u, (debt, hf) in step_health[s["block"]].items():
                if debt > 0 and hf < WAD:
                    became.setdefault(u, s["block"])
        first: dict[str, dict] = {}
        for lg in liqs:
            first.setdefault(lg["user"], lg)
        per_user = []
        step_blocks = sorted(s["block"] for s in steps)
        for u, lg in first.items():
            # Liquidated in an update's own block (a backrun), a user shows healthy again at that block's end:
            # its trigger is then the last update at or before its liquidation.
            trigger = became.get(u) or max((b for b in step_blocks if b <= lg["block"]), default=None)
            if trigger is not None:
                became.setdefault(u, trigger)
            per_user.append({"user": u, "first": names.get(lg["liquidator"], lg["liquidator"]), "block": lg["block"],
                             "tx_index": lg["index"], "price_block": trigger,
                             "blocks_after_price": lg["block"] - trigger if trigger else None,
                             "liquidations": Counter(names.get(x["liquidator"], x["liquidator"]) for x in liqs
                                                     if x["user"] == u)})
        won = Counter(p["first"] for p in per_user)
        blocks = {who: [p["blocks_after_price"] for p in per_user if p["first"] == who and p["blocks_after_price"] is not None]
                  for who in ("liqbot", "rival")}
        out = {
            "mode": self.mode, "block_time": self.block_time, "start_block": start_block, "steps": steps,
            "borrowers": len(borrowers), "became_liquidatable": len(became),
            "left_liquidatable": sorted(u for u, (debt, hf) in final.items() if debt > 0 and hf < WAD),
            "users_liquidated": len(first), "first_liqbot": won["liqbot"], "first_rival": won["rival"],
            "capture_rate": won["liqbot"] / len(first) if first else None,
            "liquidations": dict(Counter(names.get(x["liquidator"], x["liquidator"]) for x in liqs)),
            "blocks_after_price": {"all": pcts([b for v in blocks.values() for b in v]),
                                   **{k: pcts(v) for k, v in blocks.items()}},
            "transactions": self.transactions(start_block), "attempts": self.attempts(), "logs": self.logs_report(),
            "per_user": sorted(per_user, key=lambda p: (p["block"], p["tx_index"])),
            "accounts": {"liqbot": self.ours, "rival": self.theirs}, "workdir": str(self.work),
        }
        out["liquidations"].setdefault("liqbot", 0)
        out["liquidations"].setdefault("rival", 0)
        return out


def _shorten(reason: str | None) -> str:
    if not reason:
        return "-"
    return re.sub(r"0x[0-9a-fA-F]{8,}", "0x…", reason)[:110]


def run_mode(args: argparse.Namespace, block_time: float) -> dict:
    race = Race(args, block_time)
    console.print(f"[bold]{race.mode}[/]: devnet on {race.dn.market.rpc_url}, logs in {race.work}")
    try:
        borrowers = race.prepare()
        race.start_processes()
        start_block, steps = race.crash()
        result = race.report(borrowers, start_block, steps)
    finally:
        race.close()
    result["args"] = {k: v for k, v in vars(args).items() if k != "block_time"}
    out = ROOT / "bench" / "results" / f"race-{race.mode}{'-' + args.tag if args.tag else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    console.print(f"wrote {out}")
    return result


def same_block(r: dict) -> str:
    ours = [p for p in r["per_user"] if p["first"] == "liqbot" and p["blocks_after_price"] is not None]
    same = sum(p["blocks_after_price"] == 0 for p in ours)
    return f"{same}/{len(ours)}" + (f" ({same / len(ours):.0%})" if ours else "")


def fmt_p(d: dict) -> str:
    return "-" if not d.get("n") else f"{d['p50']:.4g} / {d['max']:.4g} (n={d['n']})"


def table(results: list[dict]) -> list[tuple[str, ...]]:
    rows = [("measure", *[r["mode"] for r in results])]

    def row(label: str, fn) -> None:
        rows.append((label, *[str(fn(r)) for r in results]))

    row("borrowers / became liquidatable", lambda r: f"{r['borrowers']} / {r['became_liquidatable']}")
    row("users liquidated (left liquidatable at the end)", lambda r: f"{r['users_liquidated']} ({len(r['left_liquidatable'])})")
    row("first liquidation: liqbot / rival", lambda r: f"{r['first_liqbot']} / {r['first_rival']}")
    row("**capture rate** (liqbot first / users liquidated)",
        lambda r: "-" if r["capture_rate"] is None else f"**{r['capture_rate']:.0%}**")
    row("liquidations: liqbot / rival", lambda r: f"{r['liquidations']['liqbot']} / {r['liquidations']['rival']}")
    row("liquidationCall txs sent: liqbot / rival",
        lambda r: f"{r['transactions']['liqbot']['liquidation_calls']} / {r['transactions']['rival']['liquidation_calls']}")
    row("reverted txs: liqbot / rival",
        lambda r: f"{r['transactions']['liqbot']['reverted']} / {r['transactions']['rival']['reverted']}")
    def fees(r: dict, who: str) -> str:
        t = r["transactions"][who]
        return f"{pcts(t['max_fee_gwei']).get('p50', '-')} ({pcts(t['tip_gwei']).get('p50', '-')})"

    row("liquidationCall max fee (tip) p50, gwei: liqbot / rival", lambda r: f"{fees(r, 'liqbot')} / {fees(r, 'rival')}")
    row("blocks update -> first liquidation, p50 / max: liqbot wins", lambda r: fmt_p(r["blocks_after_price"]["liqbot"]))
    row("blocks update -> first liquidation, p50 / max: rival wins", lambda r: fmt_p(r["blocks_after_price"]["rival"]))
    row("liqbot's first liquidations in the update's own block", same_block)
    row("liqbot detection -> send ms, p50 / max", lambda r: fmt_p(r["attempts"].get("detect_to_send_ms", {})))
    row("liqbot detection -> attempt start ms (producer or worker), p50 / max",
        lambda r: fmt_p(r["attempts"].get("detect_to_start_ms", {})))
    row("liqbot liquidationCalls sent by: producer / worker",
        lambda r: "{producer} / {worker}".format(**r["attempts"].get("sent_by", {"producer": "-", "worker": "-"})))
    row("rival event -> send ms, p50 / max", lambda r: fmt_p(r["logs"]["rival"]["event_to_send_ms"]))
    row("liqbot attempts by outcome",
        lambda r: ", ".join(f"{k} {v}" for k, v in r["attempts"].get("by_outcome", {}).items()) or "-")
    row("liqbot attempts by path", lambda r: ", ".join(f"{k} {v}" for k, v in r["attempts"].get("by_path", {}).items()) or "-")
    row("liqbot ⚡ lines (priority / default worker)",
        lambda r: f"{r['logs']['priority']['flash']} / {r['logs']['default']['flash']}")
    row("liqbot breaker log lines",
        lambda r: sum(len(r["logs"][n]["breaker"]) for n in ("priority", "default", "beat", "producer")))
    return rows


def print_results(results: list[dict], command: str) -> None:
    rows = table(results)
    t = Table(*rows[0], title="race against a compact rival")
    for r in rows[1:]:
        t.add_row(*[c.replace("**", "") for c in r])
    console.print(t)
    for r in results:
        reasons = r["attempts"].get("top_reasons") or []
        if reasons:
            console.print(f"{r['mode']}: liqbot's top non-mined outcomes:")
            for reason, n in reasons:
                console.print(f"  {n:4d}  {reason}")
    print("\nmarkdown:\n" + "\n".join(markdown(results, command)))


def cli_error() -> str | None:
    """None when `python -m liqbot` builds its command line, else the last line of its error."""
    r = subprocess.run([sys.executable, "-m", "liqbot", "--help"], check=False, capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--borrowers", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--asset", default="WETH")
    parser.add_argument("--pct", type=float, default=-15, help="the whole move, in percent")
    parser.add_argument("--steps", type=int, default=5, help="oracle updates the move arrives in")
    parser.add_argument("--step-secs", type=float, default=3.0, help="seconds between two updates")
    parser.add_argument("--block-time", type=float, default=None,
                        help="0: automine; N: interval mining every N s (integer); default: both, one after the other")
    parser.add_argument("--rival-account", default="user9")
    parser.add_argument("--tag", default="", help="results go to bench/results/race-<mode>-<tag>.json")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds between both being live and the first update")
    parser.add_argument("--quiet", type=float, default=8.0, help="settled once no liquidation landed for this long")
    parser.add_argument("--timeout", type=float, default=120.0, help="at most this long after the last update")
    parser.add_argument("--no-backrun", action="store_true", help="with a block time: MEMPOOL_BACKRUN=false")
    return parser


def markdown(results: list[dict], command: str) -> list[str]:
    rows = table(results)
    md = [f"Command: `{command}`", "", "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    md += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    for r in results:
        for reason, n in r["attempts"].get("top_reasons") or []:
            md.append(f"- {r['mode']}: {n} x {reason}")
    return md


def main() -> None:
    args = parser().parse_args()
    sys.path.insert(0, str(ROOT))
    args.cli_error = cli_error()
    if args.cli_error:
        console.print(f"[yellow]`python -m liqbot` does not start ({args.cli_error}); the producer is started by calling "
                      "liqbot.cli.ops.producer() directly, the function `liqbot producer` runs[/]")
    signal.signal(signal.SIGTERM, _interrupt)  # `finally` then stops everything we started
    modes = [0.0, 2.0] if args.block_time is None else [args.block_time]
    results = [run_mode(args, bt) for bt in modes]
    print_results(results, "python -m bench.race " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
