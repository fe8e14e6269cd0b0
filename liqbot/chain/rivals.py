"""Who else is liquidating our users: rivals' pending transactions and their mined liquidations.

Read only when a simulation against the pending block says the user is no longer liquidatable: one
round trip tells a pending rival (we can still be ordered first: bid) from a race already lost."""

from __future__ import annotations

from dataclasses import dataclass

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.domain.fees import Fees
from liqbot.domain.reverts import revert_code
from liqbot.errors import RpcError


@dataclass(frozen=True)
class RivalTx:
    tx_hash: str
    fees: Fees


@dataclass(frozen=True)
class Contest:
    """One user whose liquidation failed against the pending block."""

    mined_ok: bool  # the liquidation still succeeds against the latest mined block
    code: str | None  # why it fails against the latest block, when it does
    pending: RivalTx | None  # the best-paying pending transaction that touches the user
    mined: str | None  # a liquidation of the user by someone else, mined since the detection


def _fees(tx: dict) -> Fees:
    if tx.get("maxFeePerGas") is not None:
        return Fees(int(tx["maxFeePerGas"], 16), int(tx.get("maxPriorityFeePerGas") or "0x0", 16))
    price = int(tx.get("gasPrice") or "0x0", 16)
    return Fees(price, price)


def read_contests(rpc: Rpc, pool: str, sender: str, calls: list[tuple[str, str, str]], since_block: int,
                  until: tuple[int, int] | None = None, contract: str | None = None) -> list[Contest]:
    """`calls` are (user, to, data) of the failed liquidations. In one batch: each call against the
    latest block, the pending block's transactions, and the LiquidationCall logs of these users since
    `since_block`. A pending transaction is a rival when its input names the user (directly or packed in
    a contract's parameters) and it is not ours (sent by `sender`, or liquidated through our `contract`).

    With `until` (block, transaction index) of our own reverted transaction: the calls run at the end
    of that block, no pending block is read, and only liquidations ordered before ours count."""
    users = [u for u, _, _ in calls]
    at = hex(until[0]) if until else "latest"
    batch: list[tuple[str, list]] = [("eth_call", [{"from": sender, "to": to, "data": data}, at]) for _, to, data in calls]
    batch.append(_liquidations_of(pool, users, since_block, at))
    if until is None:
        batch.append(("eth_getBlockByNumber", ["pending", True]))
    replies = rpc.batch(batch, raise_errors=False)
    latest, logs = replies[: len(calls)], replies[len(calls)]
    block = replies[-1] if until is None else None
    pending = [] if isinstance(block, RpcError) or not block else block.get("transactions", [])
    txs = [tx for tx in pending if isinstance(tx, dict) and (tx.get("from") or "").lower() != sender.lower()]
    mined = _rivals_in(logs, (sender, contract), until)
    out = []
    for (user, _, _), reply in zip(calls, latest, strict=True):
        needle = user[2:].lower()
        touching = [tx for tx in txs if needle in (tx.get("input") or "").lower()]
        best = max(touching, key=lambda tx: (_fees(tx).max_fee, _fees(tx).tip), default=None)
        failed = isinstance(reply, RpcError)
        out.append(Contest(mined_ok=not failed, code=revert_code(reply.data) if failed else None,
                           pending=RivalTx(best["hash"], _fees(best)) if best else None, mined=mined.get(user.lower())))
    return out


def mined_rivals(rpc: Rpc, pool: str, sender: str, users: list[str], since_block: int,
                 contract: str | None = None) -> dict[str, str]:
    """user (lower case) -> the last LiquidationCall of that user by someone else since `since_block`."""
    return _rivals_in(rpc.batch([_liquidations_of(pool, users, since_block, "latest")], raise_errors=False)[0],
                      (sender, contract))


def _liquidations_of(pool: str, users: list[str], since_block: int, to_block: str) -> tuple[str, list]:
    return ("eth_getLogs", [{"fromBlock": hex(max(since_block, 0)), "toBlock": to_block, "address": pool,
                             "topics": [aave.LIQUIDATION_CALL_EVENT.topic0, None, None,
                                        ["0x" + u[2:].lower().rjust(64, "0") for u in users]]}])


def _rivals_in(logs: object, ours: tuple[str | None, ...], until: tuple[int, int] | None = None) -> dict[str, str]:
    mine = {a.lower() for a in ours if a}
    mined: dict[str, str] = {}
    for lg in logs if isinstance(logs, list) else []:
        ev = aave.LIQUIDATION_CALL_EVENT.decode(lg)
        if ev["liquidator"].lower() not in mine and (
                until is None or (int(lg["blockNumber"], 16), int(lg["transactionIndex"], 16)) < until):
            mined[ev["user"].lower()] = lg["transactionHash"]
    return mined
