"""A compact rival liquidation bot, the kind one skilled operator writes in an afternoon.

    python -m bench.rival --market market.json [--account user9] [--rpc URL] [--ws URL]

One asyncio process. Over one WebSocket it follows new heads, every log of the Pool (Borrow events
teach it borrowers, after an eth_getLogs backfill at start), price feeds' `AnswerUpdated` and the
AaveOracle's `AssetSourceUpdated`. Every trigger (coalesced while a check runs) costs one JSON-RPC
batch of `getUserAccountData` for every known borrower; for each user with HF < 1 and debt > 0 a
second batch reads `getUserReserveData` of every reserve and the oracle's prices, and the largest
debt and largest collateral (by value) are liquidated at once, all users of the trigger in one send
batch: `liquidationCall(collateral, debt, user, type(uint256).max, false)` from an unlocked devnet
account (eth_sendTransaction, nonces tracked here), gas limit 1,000,000, tip 2 gwei, max fee
2 x base fee + 2 gwei. No simulation, no profit check, no dedupe beyond "not the same user twice
within 2 s". The account must hold every debt asset and have approved the Pool (bench/race.py does it).

Log lines: `rival live ...` once ready, then one `rival send` line per transaction with the
trigger and its event->send latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path

import aiohttp
from eth_utils import keccak
from websockets.asyncio.client import connect

log = logging.getLogger("rival")

GAS_LIMIT = 1_000_000
TIP = 2 * 10**9
REPEAT_SECS = 2.0
MAX_UINT = 2**256 - 1


def selector(sig: str) -> str:
    return "0x" + keccak(text=sig)[:4].hex()


def topic(sig: str) -> str:
    return "0x" + keccak(text=sig).hex()


def word(x: int | str) -> str:
    return (int(x, 16) if isinstance(x, str) else x).to_bytes(32, "big").hex()


def words(data: str) -> list[int]:
    raw = data[2:]
    return [int(raw[i : i + 64], 16) for i in range(0, len(raw), 64)]


ACCOUNT_DATA = selector("getUserAccountData(address)")
USER_RESERVE = selector("getUserReserveData(address,address)")
ASSET_PRICE = selector("getAssetPrice(address)")
SOURCE_OF = selector("getSourceOfAsset(address)")
LIQUIDATE = selector("liquidationCall(address,address,address,uint256,bool)")
BORROW = topic("Borrow(address,address,address,uint256,uint8,uint256,uint16)")
ANSWER_UPDATED = topic("AnswerUpdated(int256,uint256,uint256)")
SOURCE_UPDATED = topic("AssetSourceUpdated(address,address)")
LIQUIDATION = topic("LiquidationCall(address,address,address,uint256,uint256,address,bool)")


class Rival:
    def __init__(self, market: dict, rpc: str, ws: str, account: str):
        c = market["contracts"]
        self.pool, self.oracle, self.dp = c["Pool"].lower(), c["AaveOracle"].lower(), c["AaveProtocolDataProvider"]
        self.reserves = [(r["address"], r["decimals"]) for r in market["reserves"].values()]
        self.deploy_block = market["deploy_block"]
        self.rpc_url, self.ws_url, self.me = rpc, ws, account
        self.borrowers: set[str] = set()
        self.feeds: set[str] = set()
        self.sent: dict[str, float] = {}
        self.base_fee = 0
        self.nonce = 0
        self.ids = 0
        self.wake = asyncio.Event()
        self.trigger: tuple[str, float, int] | None = None  # earliest unhandled (kind, when received, block)

    # --- JSON-RPC over HTTP --------------------------------------------------------------------
    async def batch(self, calls: list[tuple[str, list]]) -> list:
        if not calls:
            return []
        payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        async with self.http.post(self.rpc_url, json=payload) as resp:
            replies = await resp.json(content_type=None)
        by_id = {r["id"]: r for r in replies}
        return [by_id[i].get("result", by_id[i].get("error")) for i in range(len(calls))]

    async def call(self, method: str, *params) -> object:
        return (await self.batch([(method, list(params))]))[0]

    def eth_call(self, to: str, data: str) -> tuple[str, list]:
        return "eth_call", [{"to": to, "data": data}, "latest"]

    # --- start-up ----------------------------------------------------------------------------------
    async def backfill(self, head: int) -> None:
        for start in range(self.deploy_block, head + 1, 5000):
            logs = await self.call("eth_getLogs", {"address": self.pool, "topics": [BORROW], "fromBlock": hex(start),
                                                   "toBlock": hex(min(head, start + 4999))})
            self.borrowers.update("0x" + lg["topics"][2][-40:] for lg in logs)
        sources = await self.batch([self.eth_call(self.oracle, SOURCE_OF + word(a)) for a, _ in self.reserves])
        self.feeds = {"0x" + s[-40:] for s in sources}

    async def run(self) -> None:
        async with aiohttp.ClientSession() as self.http, connect(self.ws_url, max_size=2**26) as ws:
            subs = [["newHeads"], ["logs", {"address": self.pool}], ["logs", {"topics": [ANSWER_UPDATED]}],
                    ["logs", {"address": self.oracle, "topics": [SOURCE_UPDATED]}]]
            for i, params in enumerate(subs):
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": i, "method": "eth_subscribe", "params": params}))
            kinds: dict[str, str] = {}
            while len(kinds) < len(subs):
                msg = json.loads(await ws.recv())
                if "id" in msg:
                    kinds[msg["result"]] = subs[msg["id"]][0] if msg["id"] == 0 else ("pool", "price", "source")[msg["id"] - 1]
            block = await self.call("eth_getBlockByNumber", "latest", False)
            self.base_fee = int(block["baseFeePerGas"], 16)
            await self.backfill(int(block["number"], 16))
            self.nonce = int(await self.call("eth_getTransactionCount", self.me, "pending"), 16)
            checker = asyncio.create_task(self.checker())
            log.info("rival live on %s: %d borrowers, %d feeds, account %s", self.ws_url, len(self.borrowers),
                     len(self.feeds), self.me)
            try:
                async for raw in ws:
                    now = time.perf_counter()
                    msg = json.loads(raw)
                    params = msg.get("params") or {}
                    self.on_event(kinds.get(params.get("subscription"), "?"), params.get("result") or {}, now)
            finally:
                checker.cancel()

    def on_event(self, kind: str, ev: dict, now: float) -> None:
        if kind == "newHeads":
            self.base_fee = int(ev.get("baseFeePerGas") or "0x0", 16)
            self.fire("head", now, int(ev["number"], 16))
            return
        block = int(ev.get("blockNumber") or "0x0", 16)
        topics = ev.get("topics") or []
        if not topics:
            return
        if kind == "pool":
            if topics[0] == BORROW:
                user = "0x" + topics[2][-40:]
                if user not in self.borrowers:
                    self.borrowers.add(user)
                self.fire("borrow", now, block)
            # any other Pool event may move a health factor down (withdraw, borrow): check too
            elif topics[0] != LIQUIDATION:
                self.fire("pool", now, block)
        elif kind == "price" and ev["address"].lower() in self.feeds:
            self.fire("AnswerUpdated", now, block)
        elif kind == "source":
            self.feeds.add("0x" + topics[2][-40:])
            self.fire("AssetSourceUpdated", now, block)

    def fire(self, kind: str, now: float, block: int) -> None:
        if self.trigger is None:
            self.trigger = (kind, now, block)
        self.wake.set()

    # --- the loop: check everyone, liquidate at once ----------------------------------------------
    async def checker(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            trigger, self.trigger = self.trigger, None
            try:
                await self.check(trigger)
            except Exception:  # a skilled operator's bot keeps going, and says why
                log.exception("check failed")

    async def check(self, trigger: tuple[str, float, int]) -> None:
        users = sorted(self.borrowers)
        datas = await self.batch([self.eth_call(self.pool, ACCOUNT_DATA + word(u)) for u in users])
        now = time.monotonic()
        targets = []
        for u, d in zip(users, datas, strict=True):
            if not isinstance(d, str) or len(d) < 2 + 64 * 6:
                continue
            w = words(d)
            if w[1] > 0 and w[5] < 10**18 and now - self.sent.get(u, -1e9) >= REPEAT_SECS:
                targets.append(u)
        if not targets:
            return
        n = len(self.reserves)
        calls = [self.eth_call(self.oracle, ASSET_PRICE + word(a)) for a, _ in self.reserves]
        calls += [self.eth_call(self.dp, USER_RESERVE + word(a) + word(u)) for u in targets for a, _ in self.reserves]
        out = await self.batch(calls)
        prices = [int(p, 16) for p in out[:n]]
        txs, picked = [], []
        for k, u in enumerate(targets):
            best_debt = best_coll = (0, "")
            for j, (asset, dec) in enumerate(self.reserves):
                w = words(out[n + k * n + j])
                debt = (w[1] + w[2]) * prices[j] // 10**dec
                coll = w[0] * prices[j] // 10**dec if w[8] else 0
                best_debt, best_coll = max(best_debt, (debt, asset)), max(best_coll, (coll, asset))
            if not best_debt[0] or not best_coll[0]:
                continue
            data = LIQUIDATE + word(best_coll[1]) + word(best_debt[1]) + word(u) + word(MAX_UINT) + word(0)
            txs.append({"from": self.me, "to": self.pool, "data": data, "gas": hex(GAS_LIMIT), "nonce": hex(self.nonce),
                        "maxPriorityFeePerGas": hex(TIP), "maxFeePerGas": hex(2 * self.base_fee + TIP)})
            self.nonce += 1
            picked.append(u)
        if not txs:
            return
        hashes = await self.batch([("eth_sendTransaction", [tx]) for tx in txs])
        sent_at = time.perf_counter()
        kind, at, block = trigger
        resync = False
        for u, tx, h in zip(picked, txs, hashes, strict=True):
            self.sent[u] = now
            ok = isinstance(h, str)
            resync |= not ok
            log.info("rival send user=%s nonce=%d trigger=%s@%d event->send=%.1fms %s", u, int(tx["nonce"], 16), kind, block,
                     (sent_at - at) * 1000, h if ok else f"REFUSED {h}")
        if resync:
            self.nonce = int(await self.call("eth_getTransactionCount", self.me, "pending"), 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--market", required=True, type=Path, help="a devnet market file")
    parser.add_argument("--rpc", help="HTTP JSON-RPC URL (default: the market file's)")
    parser.add_argument("--ws", help="WebSocket URL (default: the market file's)")
    parser.add_argument("--account", default="user9", help="the market file's account role to liquidate from")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s.%(msecs)03d %(message)s", datefmt="%H:%M:%S")
    market = json.loads(args.market.read_text())
    rival = Rival(market, args.rpc or market["rpc_url"], args.ws or market["ws_url"],
                  market["accounts"][args.account]["address"])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(rival.run())


if __name__ == "__main__":
    main()
