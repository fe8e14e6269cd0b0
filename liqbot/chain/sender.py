"""Sign and send transactions from the liquidator's key (EIP-1559).

Nonces: sends from one account are serialised by a short Redis lock; inside it the nonce is the
node's pending count, so concurrent workers never collide and a failed send leaves no gap.
Sends are never retried blindly: a send that raised is reported, and the scanner re-detects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from eth_account import Account

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.errors import LiqbotError, RpcError

log = logging.getLogger(__name__)
APPROVED_ENOUGH = 2**255


class SimulationFailed(LiqbotError):
    """eth_estimateGas reverted: the transaction would fail on chain."""


@dataclass(frozen=True)
class Fees:
    max_fee: int
    tip: int


def fees(base_fee: int, tip_cap: int, max_fee_cap: int) -> Fees:
    """2x the base fee plus the tip, never above the cap (pure)."""
    tip = min(tip_cap, max_fee_cap)
    return Fees(min(2 * base_fee + tip, max_fee_cap), tip)


class Sender:
    def __init__(self, rpc: Rpc, private_key: str, chain_id: int, r: redis.Redis, lock_key: str,
                 tip_wei: int, max_fee_wei: int):
        self._account = Account.from_key(private_key)
        self.address: str = self._account.address
        self.rpc, self.chain_id, self.r = rpc, chain_id, r
        self.lock_key = f"{lock_key}:{self.address}"
        self.tip_wei, self.max_fee_wei = tip_wei, max_fee_wei
        self._approved: set[str] = set()

    def __repr__(self) -> str:  # never show the key
        return f"Sender({self.address})"

    def prepare(self, to: str, data: str) -> tuple[int, Fees]:
        """Simulate (eth_estimateGas) and price the transaction in one round trip."""
        est, block = self.rpc.batch(
            [("eth_estimateGas", [{"from": self.address, "to": to, "data": data}, "pending"]),
             ("eth_getBlockByNumber", ["latest", False])], raise_errors=False)
        if isinstance(est, RpcError):
            raise SimulationFailed(str(est))
        if isinstance(block, RpcError):
            raise block
        gas = int(est, 16) * 12 // 10 + 20_000
        return gas, fees(int(block.get("baseFeePerGas", "0x0"), 16), self.tip_wei, self.max_fee_wei)

    def send(self, to: str, data: str, gas: int, fee: Fees) -> str:
        with self.r.lock(self.lock_key, timeout=10, blocking_timeout=10):
            nonce = int(self.rpc.call("eth_getTransactionCount", self.address, "pending"), 16)
            return self._sign_and_send(to, data, gas, fee, nonce)

    def _sign_and_send(self, to: str, data: str, gas: int, fee: Fees, nonce: int) -> str:
        tx = {"chainId": self.chain_id, "nonce": nonce, "to": to, "data": data, "gas": gas, "value": 0,
              "maxFeePerGas": fee.max_fee, "maxPriorityFeePerGas": fee.tip, "type": 2}
        signed = self._account.sign_transaction(tx)
        return self.rpc.call("eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())

    def ensure_approved(self, token: str, spender: str) -> None:
        """Approve `spender` for the token once (kept on chain; remembered per process)."""
        if token in self._approved:
            return
        allowance = aave.ALLOWANCE.decode(self.rpc.eth_call(token, aave.ALLOWANCE.calldata(self.address, spender)))
        if allowance < APPROVED_ENOUGH:
            data = aave.APPROVE.calldata(spender, aave.UINT256_MAX)
            gas, fee = self.prepare(token, data)
            tx_hash = self.send(token, data, gas, fee)
            log.info("approved %s for %s (tx %s)", token, spender, tx_hash)
        self._approved.add(token)

