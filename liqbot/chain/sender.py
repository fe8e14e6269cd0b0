"""Sign and send transactions from the liquidator's key (EIP-1559), with a nonce allocator in Redis.

Nonces: every send from one account holds a short Redis lock; inside it the nonce is the larger of
the node's pending count and the next nonce we stored after our last send (a load-balanced RPC may
not have seen that one yet). The stored value only moves after the node accepted the transaction,
so concurrent workers never collide and a failed send leaves no gap; it expires after a minute of
quiet, so a transaction dropped from the mempool cannot wedge the account. Sends are never retried
blindly: a send that raised is reported, and the scanner re-detects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis
from eth_abi import decode
from eth_abi.exceptions import DecodingError
from eth_account import Account

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.domain.fees import Fees
from liqbot.errors import LiqbotError, RpcError

log = logging.getLogger(__name__)
APPROVED_ENOUGH = 2**255
NONCE_MEMORY_SECS = 60


class SimulationFailed(LiqbotError):
    """The transaction reverts when simulated against the pending block."""


@dataclass(frozen=True)
class Simulation:
    estimate: int  # gas the node expects it to use
    gas: int  # limit to send with: the estimate with headroom
    base_fee: int  # of the latest block


@dataclass(frozen=True)
class Sent:
    tx_hash: str
    nonce: int


class Sender:
    def __init__(self, rpc: Rpc, private_key: str, chain_id: int, r: redis.Redis, key_prefix: str):
        self._account = Account.from_key(private_key)
        self.address: str = self._account.address
        self.rpc, self.chain_id, self.r = rpc, chain_id, r
        self._lock_key = f"{key_prefix}:sendlock:{self.address}"
        self._nonce_key = f"{key_prefix}:nonce:{self.address}"
        self._approved: set[str] = set()

    def __repr__(self) -> str:  # never show the key
        return f"Sender({self.address})"

    def simulate(self, to: str, data: str, expected_gas: int | None = None, gas_limit: int | None = None) -> Simulation:
        """The exact call against the pending block, with the base fee, in one round trip. With
        `expected_gas` / `gas_limit` (what liquidations have been using) it is one eth_call; without,
        eth_estimateGas runs too (its binary search re-executes the call several times)."""
        tx = {"from": self.address, "to": to, "data": data}
        calls = [("eth_call", [tx, "pending"]), ("eth_getBlockByNumber", ["latest", False])]
        if expected_gas is None:
            calls.append(("eth_estimateGas", [tx, "pending"]))
        call, block, *est = self.rpc.batch(calls, raise_errors=False)
        for reply in (call, *est):
            if isinstance(reply, RpcError):
                raise SimulationFailed(_reason(reply))
        if isinstance(block, RpcError):
            raise block
        base_fee = int(block.get("baseFeePerGas") or "0x0", 16)
        if expected_gas is not None:
            return Simulation(expected_gas, gas_limit or expected_gas * 3, base_fee)
        estimate = int(est[0], 16)
        return Simulation(estimate, estimate * 12 // 10 + 20_000, base_fee)

    def send(self, to: str, data: str, gas: int, fees: Fees,
             before_send: Callable[[str, int], None] | None = None, pending_nonce: int | None = None) -> Sent:
        """`before_send(tx_hash, nonce)` runs between signing and sending: a record of intent that
        survives the process being killed mid-send. `pending_nonce`, read before taking the lock (with
        the snapshot), saves a round trip: the stored next nonce covers sends made since."""
        with self.r.lock(self._lock_key, timeout=10, blocking_timeout=10):
            if pending_nonce is None:
                pending_nonce = int(self.rpc.call("eth_getTransactionCount", self.address, "pending"), 16)
            pending = pending_nonce
            stored = self.r.get(self._nonce_key)
            nonce = max(pending, int(stored) if stored is not None else 0)
            tx = {"chainId": self.chain_id, "nonce": nonce, "to": to, "data": data, "gas": gas, "value": 0,
                  "maxFeePerGas": fees.max_fee, "maxPriorityFeePerGas": fees.tip, "type": 2}
            signed = self._account.sign_transaction(tx)
            tx_hash = "0x" + bytes(signed.hash).hex()
            if before_send:
                before_send(tx_hash, nonce)
            returned = self.rpc.call("eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
            self.r.set(self._nonce_key, nonce + 1, ex=NONCE_MEMORY_SECS)
            return Sent(returned or tx_hash, nonce)

    def forget_nonce(self) -> None:
        """After a reorg the chain's nonce may go back: stop trusting the stored one."""
        self.r.delete(self._nonce_key)

    def balances(self, tokens: list[str]) -> dict[str, int]:
        raws = self.rpc.batch([("eth_call", [{"to": t, "data": aave.BALANCE_OF.calldata(self.address)}, "latest"])
                               for t in tokens])
        return {t: aave.BALANCE_OF.decode(raw) for t, raw in zip(tokens, raws, strict=True)}

    def ensure_approved(self, token: str, spender: str, fees: Fees) -> None:
        """Approve `spender` for the token once: kept on chain, remembered per process."""
        if token in self._approved:
            return
        allowance = aave.ALLOWANCE.decode(self.rpc.eth_call(token, aave.ALLOWANCE.calldata(self.address, spender)))
        if allowance < APPROVED_ENOUGH:
            data = aave.APPROVE.calldata(spender, aave.UINT256_MAX)
            sim = self.simulate(token, data)
            sent = self.send(token, data, sim.gas, fees)
            log.info("approved %s for %s (tx %s)", token, spender, sent.tx_hash)
        self._approved.add(token)


def _reason(err: RpcError) -> str:
    data = err.data if isinstance(err.data, str) else ""
    if data.startswith("0x08c379a0") and len(data) > 138:  # Error(string): Aave's numeric codes
        try:
            return f"{err} ({decode(['string'], bytes.fromhex(data[10:]))[0]})"
        except (DecodingError, ValueError):
            pass
    return str(err)
