"""The mirror's drift on a large devnet: every user compared with `getUserAccountData` after the market moved.

    .venv/bin/python -m bench.drift [--borrowers 10000] [--later 500] [--aave 3.6]

Seeds `--borrowers` borrowers, loads the mirror pinned to one block, then moves the market the ways the
producer has to follow: a year of interest (`evm_increaseTime`), every asset's price (-12% .. +9%),
`--later` new borrowers (Supply, Borrow, collateral flags) and liquidations of whoever that made
liquidatable, all applied from the logs block by block as the producer applies them. Then one full
comparison (mirror/audit.py, what the producer runs at the full rescan's interval) at the mirror's block.
Writes bench/results/drift.json.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from liqbot.chain import aave
from liqbot.chain.reader import account_data
from liqbot.devnet import AAVE_VERSIONS, DEFAULT_AAVE, Devnet, move_price, seed_borrowers
from liqbot.devnet.txs import TxSender
from liqbot.errors import RpcError
from liqbot.mirror import LiveMirror
from liqbot.mirror.audit import audit, snapshot

OUT = Path(__file__).parent / "results" / "drift.json"


def liquidate_some(dn: Devnet, users: list[str], limit: int) -> int:
    """Up to `limit` liquidatable users liquidated from the liquidator's inventory (real LiquidationCalls), each
    with the first (collateral, debt) pair of the devnet's reserves the Pool accepts."""
    m, rpc = dn.market, dn.rpc
    me = m.account("liquidator").address
    tx = TxSender(rpc)
    assets = [r.address for r in m.reserves.values()]
    for token in assets:
        tx.call(me, token, aave.APPROVE, m.pool, aave.UINT256_MAX)
    tx.settle()
    done = 0
    for user, acc in account_data(rpc, m.pool, users).items():
        if done >= limit:
            break
        if not acc.liquidatable:
            continue
        for c, d in ((c, d) for c in assets for d in assets):
            data = aave.LIQUIDATION_CALL.calldata(c, d, user, aave.UINT256_MAX, False)
            try:
                rpc.call("eth_call", {"from": me, "to": m.pool, "data": data}, "latest")
            except RpcError:
                continue
            tx.call(me, m.pool, aave.LIQUIDATION_CALL, c, d, user, aave.UINT256_MAX, False, gas=1_500_000)
            tx.settle()
            done += 1
            break
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--borrowers", type=int, default=10_000)
    ap.add_argument("--later", type=int, default=500)
    ap.add_argument("--aave", choices=AAVE_VERSIONS, default=DEFAULT_AAVE)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with Devnet.start(aave_version=args.aave) as dn:
        t0 = time.monotonic()
        users = [b.address for b in seed_borrowers(dn.market, args.borrowers, seed=args.seed).borrowers]
        print(f"seeded {len(users):,} borrowers in {time.monotonic() - t0:.0f} s")
        t0 = time.monotonic()
        lm = LiveMirror.load(dn.rpc, dn.market.pool, users)
        loaded_at, load_secs = lm.block, time.monotonic() - t0
        print(f"mirror loaded at block {loaded_at}: {len(lm.mirror.users):,} users in {load_secs:.1f} s")

        dn.increase_time(365 * 24 * 3600)
        for symbol in dn.market.reserves:
            move_price(dn.market, symbol, pct=round(rng.uniform(-12, 9), 2))
        later = [b.address for b in seed_borrowers(dn.market, args.later, seed=args.seed + 1).borrowers] if args.later else []
        move_price(dn.market, "WETH", pct=-15)
        liquidated = liquidate_some(dn, users + later, 25)
        head = int(dn.rpc.call("eth_blockNumber"), 16)
        flt = lm.log_filter()
        logs: list[dict] = []
        for start in range(loaded_at + 1, head + 1, 2_000):
            logs += dn.rpc.call("eth_getLogs", {**flt, "fromBlock": hex(start), "toBlock": hex(min(head, start + 1_999))})
        t0 = time.monotonic()
        lm.apply(logs, to_block=head)
        apply_secs = time.monotonic() - t0
        print(f"applied {len(logs):,} logs of blocks {loaded_at + 1}-{head} in {apply_secs:.1f} s "
              f"({liquidated} liquidations among them)")
        result = audit(snapshot(lm.mirror), dn.rpc, skip=lm.unmodelled)
        for d in result.drift[:20]:
            print(f"  drift: {d.user} {d.describe()}")
        print(f"full comparison at block {result.block}: {result.compared:,} users, drift {len(result.drift)}, "
              f"{result.skipped} not compared, in {result.secs:.1f} s")
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(json.dumps({
            "aave": args.aave, "borrowers": args.borrowers, "later": args.later, "liquidated": liquidated,
            "load_secs": load_secs, "logs": len(logs), "apply_secs": apply_secs, "block": result.block,
            "compared": result.compared, "drift": len(result.drift), "skipped": result.skipped,
            "audit_secs": result.secs}, indent=1))


if __name__ == "__main__":
    main()
