"""Receipts of sent liquidations, tracked on the default queue so the priority lane never waits:
outcome (mined, reverted, lost to a rival, replaced, dropped), gas, realised profit, and the breaker told."""

from __future__ import annotations

import json
import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from liqbot.celery import app
from liqbot.chain import aave
from liqbot.chain.rivals import read_contests
from liqbot.domain.liquidation import gas_cost_base
from liqbot.domain.reverts import lost_race
from liqbot.domain.route import FLASH
from liqbot.domain.units import UINT256_MAX, value_base
from liqbot.execution import UNSIMULATED, gas_key, suspend_trust
from liqbot.runtime import Runtime, runtime
from liqbot.store.attempts import pending_attempts, record_attempt
from liqbot.store.db import Attempt
from liqbot.store.positions import get_cursor, set_cursor

log = logging.getLogger(__name__)
ERC20_TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def realised_profit(rt: Runtime, attempt: Attempt, receipt: dict, native_price: int) -> tuple[int | None, int, int]:
    """Collateral received minus debt repaid (at the prices the decision used) minus gas actually paid; for
    a flash liquidation, the debt asset our contract paid out to us (its profit) minus gas."""
    events = [aave.LIQUIDATION_CALL_EVENT.decode(log) for log in receipt.get("logs", [])
              if log.get("topics") and log["topics"][0] == aave.LIQUIDATION_CALL_EVENT.topic0]
    if not events or attempt.collateral_price is None or attempt.debt_price is None:
        return None, 0, 0
    ev = events[0]
    coll = rt.market.by_asset[ev["collateralAsset"]]
    debt = rt.market.by_asset[ev["debtAsset"]]
    gas_paid = gas_cost_base(int(receipt["gasUsed"], 16), int(receipt.get("effectiveGasPrice", "0x0"), 16), native_price)
    if attempt.route == FLASH:
        paid = paid_out(receipt, debt.asset, ev["liquidator"], rt.sender.address)
        return value_base(paid, attempt.debt_price, debt.decimals) - gas_paid, ev["debtToCover"], ev["liquidatedCollateralAmount"]
    profit = (value_base(ev["liquidatedCollateralAmount"], attempt.collateral_price, coll.decimals)
              - value_base(ev["debtToCover"], attempt.debt_price, debt.decimals) - gas_paid)
    return profit, ev["debtToCover"], ev["liquidatedCollateralAmount"]


def paid_out(receipt: dict, token: str, source: str, to: str) -> int:
    """The ERC-20 `token` moved from `source` to `to` in this transaction (Transfer logs)."""
    def topic(address: str) -> str:
        return "0x" + address[2:].lower().rjust(64, "0")

    return sum(int(lg["data"], 16) for lg in receipt.get("logs", [])
               if lg.get("address", "").lower() == token.lower() and len(lg.get("topics", [])) == 3
               and lg["topics"][0] == ERC20_TRANSFER_TOPIC and lg["topics"][1] == topic(source) and lg["topics"][2] == topic(to))


@app.task(name="liqbot.track_receipts")
def track_receipts() -> int:
    rt = runtime()
    recovered = recover_inflight(rt)
    done = 0
    with rt.sessions.begin() as session:
        pending = pending_attempts(session)
        if not pending:
            return 0
        calls = [("eth_getTransactionReceipt", [a.tx_hash]) for a in pending]
        calls += [("eth_getTransactionCount", [rt.sender.address, "latest"])]
        native = rt.native_asset
        if native:
            calls.append(("eth_call", [{"to": rt.market.oracle, "data": aave.GET_ASSET_PRICE.calldata(native)}, "latest"]))
        replies = rt.rpc.batch(calls)
        receipts, mined_nonce = replies[: len(pending)], int(replies[len(pending)], 16)
        native_price = aave.GET_ASSET_PRICE.decode(replies[-1]) if native else 0
        # A receipt read before the nonce may predate a block that mined the transaction since: ask
        # again before calling a transaction whose nonce is used "replaced".
        again = [i for i, (a, r) in enumerate(zip(pending, receipts, strict=True))
                 if r is None and a.nonce is not None and a.nonce < mined_nonce]
        if again:
            for i, receipt in zip(again, rt.rpc.batch([("eth_getTransactionReceipt", [pending[i].tx_hash]) for i in again]),
                                  strict=True):
                receipts[i] = receipt
        for attempt, receipt in zip(pending, receipts, strict=True):
            if receipt is None:
                if not _gone(rt, attempt, mined_nonce):
                    continue
            else:
                apply_receipt(rt, attempt, receipt, native_price)
            tell_breaker(rt, attempt)
            rt.state.release(attempt.user)
            done += 1
            log.info("receipt user=%s tx=%s %s%s", attempt.user, attempt.tx_hash, attempt.outcome,
                     f" in block {attempt.mined_block}" if attempt.mined_block else "")
    return done + recovered


def apply_receipt(rt: Runtime, attempt: Attempt, receipt: dict, native_price: int) -> None:
    ok = int(receipt["status"], 16) == 1
    attempt.outcome = "mined" if ok else "reverted"
    attempt.gas_used = int(receipt["gasUsed"], 16)
    attempt.mined_block = int(receipt["blockNumber"], 16)
    if ok:
        learn_gas(rt, attempt.gas_used, attempt.route)
        attempt.realised_profit_base, attempt.debt_repaid, attempt.collateral_seized = realised_profit(
            rt, attempt, receipt, native_price)
    else:
        settle_revert(rt, attempt, int(receipt["transactionIndex"], 16))


def settle_revert(rt: Runtime, attempt: Attempt, tx_index: int) -> None:
    """A revert caused by another liquidator is a lost race, not our fault: a rival's LiquidationCall of
    the user ordered before ours, or the same liquidation failing at the end of the block for a reason
    only a rival (or the user) causes: the user healthy again, the collateral or the debt gone."""
    if attempt.collateral_asset is None or attempt.debt_asset is None or attempt.mined_block is None:
        return
    data = aave.LIQUIDATION_CALL.calldata(attempt.collateral_asset, attempt.debt_asset, attempt.user,
                                          attempt.debt_to_cover or UINT256_MAX, False)
    (c,) = read_contests(rt.rpc, rt.market.pool, rt.sender.address, [(attempt.user, rt.market.pool, data)],
                         attempt.detected_block or attempt.mined_block, until=(attempt.mined_block, tx_index),
                         contract=rt.liquidator_contract)
    if c.mined or lost_race(c.code):
        attempt.outcome, attempt.rival_tx = "lost", c.mined
        attempt.reason = "lost race: reverted, " + (f"liquidated first by {c.mined}" if c.mined else f"{c.code} at its block")


def tell_breaker(rt: Runtime, attempt: Attempt) -> None:
    """The breaker guards against our own faults; a lost race is competition, not a fault."""
    if attempt.outcome != "lost":
        rt.breaker.result(attempt.outcome == "mined", f"{attempt.outcome} {attempt.tx_hash}")
    if attempt.outcome == "reverted" and (attempt.reason or "").startswith(UNSIMULATED):
        suspend_trust(rt, f"{attempt.tx_hash} of user {attempt.user}, sent without simulation, reverted")


def learn_gas(rt: Runtime, used: int, route: str | None = None) -> None:
    """A moving estimate of a liquidation's gas per route, so attempts price gas without eth_estimateGas."""
    key = gas_key(rt, route)
    old = rt.state.r.get(key)
    rt.state.r.set(key, used if old is None else (int(old) * 7 + used) // 8)


INFLIGHT_GRACE_SECS = 5.0


def recover_inflight(rt: Runtime) -> int:
    """Intents whose worker died between signing and recording: the transaction either reached the
    chain (record it, once) or never left (forget it). Either way the attempts table matches the chain."""
    key = rt.state.key("inflight")
    intents = rt.state.r.hgetall(key)
    now, recovered = time.time(), 0
    for tx_hash, raw in intents.items():
        intent = json.loads(raw)
        if now - intent.get("sent_at", now) < INFLIGHT_GRACE_SECS:
            continue  # its worker is probably still recording it
        with rt.sessions.begin() as session:
            if session.scalar(select(Attempt.id).where(Attempt.tx_hash == tx_hash)) is not None:
                rt.state.r.hdel(key, tx_hash)
                continue
            receipt = rt.rpc.call("eth_getTransactionReceipt", tx_hash)
            if receipt is None and rt.rpc.call("eth_getTransactionByHash", tx_hash) is not None:
                continue  # still pending: the next sweep sees it mined
            fields = {k: v for k, v in intent.items() if k in Attempt.__table__.columns}
            if receipt is None:
                if now - intent.get("sent_at", now) < rt.settings.receipt_timeout_secs:
                    continue
                fields |= {"tx_hash": None, "outcome": "failed",
                           "reason": f"worker died before {tx_hash} reached the node"}
                record_attempt(session, **fields)
            else:
                attempt = record_attempt(session, **fields, outcome="sent",
                                         reason="recovered after its worker died")
                apply_receipt(rt, attempt, receipt, _native_price(rt))
                tell_breaker(rt, attempt)
        rt.state.r.hdel(key, tx_hash)
        recovered += 1
        log.warning("recovered in-flight liquidation %s of user=%s", tx_hash, intent.get("user"))
    return recovered


def _native_price(rt: Runtime) -> int:
    native = rt.native_asset
    if not native:
        return 0
    return aave.GET_ASSET_PRICE.decode(rt.rpc.eth_call(rt.market.oracle, aave.GET_ASSET_PRICE.calldata(native)))


RECONCILE_CURSOR = "reconcile"
RECONCILE_PAGE = 2_000


@app.task(name="liqbot.reconcile_chain")
def reconcile_chain() -> int:
    """The chain is the ledger: every LiquidationCall our account made gets exactly one attempt row,
    even when the worker that sent it died and the Redis intent was lost with a Redis restart."""
    rt = runtime()
    me = rt.sender.address
    head = int(rt.rpc.call("eth_blockNumber"), 16)
    with rt.sessions.begin() as session:
        start = (get_cursor(session, RECONCILE_CURSOR) or rt.settings.start_block - 1) + 1
    added = 0
    for page in range(start, head + 1, RECONCILE_PAGE):
        end = min(page + RECONCILE_PAGE - 1, head)
        logs = rt.rpc.call("eth_getLogs", {"fromBlock": hex(page), "toBlock": hex(end), "address": rt.market.pool,
                                           "topics": [aave.LIQUIDATION_CALL_EVENT.topic0]})
        mine = {me, rt.liquidator_contract}
        ours = [lg for lg in logs if aave.LIQUIDATION_CALL_EVENT.decode(lg)["liquidator"] in mine]
        for lg in ours:
            tx_hash = lg["transactionHash"]
            # In this order: a worker records its row before it drops its in-flight intent.
            if rt.state.r.hexists(rt.state.key("inflight"), tx_hash):
                continue  # about to be recorded by its worker or by the in-flight sweep
            with rt.sessions.begin() as session:
                if session.scalar(select(Attempt.id).where(Attempt.tx_hash == tx_hash)) is None:
                    added += _record_from_chain(rt, session, lg)
        with rt.sessions.begin() as session:
            set_cursor(session, RECONCILE_CURSOR, end)
    return added


def _record_from_chain(rt: Runtime, session: Session, lg: dict) -> int:
    ev = aave.LIQUIDATION_CALL_EVENT.decode(lg)
    receipt = rt.rpc.call("eth_getTransactionReceipt", lg["transactionHash"])
    tx = rt.rpc.call("eth_getTransactionByHash", lg["transactionHash"])
    block = int(lg["blockNumber"], 16)
    when = int(rt.rpc.call("eth_getBlockByNumber", hex(block), False)["timestamp"], 16)
    record_attempt(session, user=ev["user"], path="recovered", detected_block=block, detected_at=float(when),
                   tx_hash=lg["transactionHash"], nonce=int(tx["nonce"], 16) if tx else None,
                   collateral_asset=ev["collateralAsset"], debt_asset=ev["debtAsset"], debt_to_cover=ev["debtToCover"],
                   debt_repaid=ev["debtToCover"], collateral_seized=ev["liquidatedCollateralAmount"], outcome="mined",
                   mined_block=block, gas_used=int(receipt["gasUsed"], 16) if receipt else None,
                   reason="recovered from the chain: its worker died before recording it")
    log.warning("recovered liquidation %s of user=%s from the chain", lg["transactionHash"], ev["user"])
    return 1


@app.task(name="liqbot.reorged")
def reorged(tx_hashes: list[str], from_block: int | None = None) -> int:
    """Blocks left the chain: their receipts are void. Track those transactions (or every attempt mined
    from `from_block` on) again, and stop trusting the stored nonce (the account's may have gone back)."""
    rt = runtime()
    rt.sender.forget_nonce()
    if not tx_hashes and from_block is None:
        return 0
    with rt.sessions.begin() as session:
        query = select(Attempt).where(Attempt.outcome.in_(("mined", "reverted", "lost")) & Attempt.mined_block.is_not(None))
        if from_block is not None:
            query = query.where((Attempt.mined_block >= from_block) | Attempt.tx_hash.in_(tx_hashes or [""]))
        else:
            query = query.where(Attempt.tx_hash.in_(tx_hashes))
        hit = list(session.scalars(query))
        for attempt in hit:
            log.warning("reorg: attempt %s (user=%s tx=%s) was %s; tracking it again", attempt.id, attempt.user,
                        attempt.tx_hash, attempt.outcome)
            attempt.outcome, attempt.mined_block, attempt.gas_used = "sent", None, None
            rt.state.release(attempt.user)  # let the scanner find the user again if it is still liquidatable
            attempt.realised_profit_base = attempt.debt_repaid = attempt.collateral_seized = None
    return len(hit)


def _gone(rt: Runtime, attempt: Attempt, mined_nonce: int) -> bool:
    """No receipt: replaced when its nonce was mined by another transaction, dropped when the node forgot
    it for longer than RECEIPT_TIMEOUT_SECS."""
    if attempt.nonce is not None and attempt.nonce < mined_nonce:
        attempt.outcome, attempt.reason = "replaced", f"nonce used by another transaction than {attempt.tx_hash}"
    elif time.time() - (attempt.sent_at or 0) > rt.settings.receipt_timeout_secs and \
            rt.rpc.call("eth_getTransactionByHash", attempt.tx_hash) is None:
        attempt.outcome, attempt.reason = "dropped", f"{attempt.tx_hash} left the mempool"
    else:
        return False
    attempt.tx_hash = None  # it is not on chain: the hash stays in the reason
    return True
