"""Sign and send transactions from the liquidator's key (EIP-1559), with a nonce allocator in Redis.

Nonces: every send from one account holds a short Redis lock; inside it the nonce is the larger of
the node's pending count and the next nonce we stored after our last send (a load-balanced RPC may
not have seen that one yet). The stored value only moves after the node accepted the transaction,
so concurrent workers never collide and a failed send leaves no gap; it expires after a minute of
quiet, so a transaction dropped from the mempool cannot wedge the account. Sends are never retried
blindly: a send that raised is reported, and the scanner re-detects.

A bundle (chain/submit.py) never moves the stored nonce: it lands whole or not at all, and a relay's
acceptance does not say which. Counting it would put every later send behind nonces that may never
be used (wedged until the memory expires); not counting it means the next send, until the bundle
shows in a block, takes the same nonces: of two such sends at most one can land, never both, never
a gap. Transactions that must all land go in one send_many (one bundle).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from eth_account import Account
from redis.exceptions import LockError

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.chain.signing import Signer
from liqbot.chain.submit import BundleResult, PublicSubmitter, Submitter
from liqbot.domain.fees import Fees
from liqbot.domain.reverts import revert_code
from liqbot.errors import LiqbotError, RpcError

log = logging.getLogger(__name__)
APPROVED_ENOUGH = 2**255
NONCE_MEMORY_SECS = 60
NONCE_TAKEN = ("nonce too low", "replacement transaction underpriced", "already known")  # node refusals
APPROVAL_PENDING_SECS = 600  # an approval sent is trusted this long while it mines
SEND_LOCK_MS = 10_000  # a sender killed mid-send holds the account no longer than this
SEND_LOCK_WAIT_SECS = 10.0
# The account's send lock and the stored next nonce in one round trip (each costs milliseconds on a loaded host).
_TAKE = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('get', KEYS[2]) or ''}
end
return {0, ''}
"""
_GIVE_BACK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class SimulationFailed(LiqbotError):
    """The transaction reverts when simulated against the pending block; `code` names the revert."""

    def __init__(self, err: RpcError, base_fee: int = 0, pending_nonce: int | None = None):
        self.code = revert_code(err.data)
        self.base_fee, self.pending_nonce = base_fee, pending_nonce  # of the batch it failed in
        super().__init__(f"{err} ({self.code})" if self.code else str(err))


@dataclass(frozen=True)
class Simulation:
    estimate: int  # gas the node expects it to use
    gas: int  # limit to send with: the estimate with headroom
    base_fee: int  # of the latest block
    pending_nonce: int | None = None  # ours, read in the same batch when asked for
    output: str = "0x"  # what the call returned (our flash liquidator returns its profit)


@dataclass(frozen=True)
class Tx:
    to: str
    data: str
    gas: int
    fees: Fees


@dataclass(frozen=True)
class Sent:
    tx_hash: str
    nonce: int
    bundle: BundleResult | None = None  # sent in a bundle: which relays took it, for which blocks


class Sender:
    def __init__(self, rpc: Rpc, private_key: str, chain_id: int, r: redis.Redis, key_prefix: str):
        self.address: str = Account.from_key(private_key).address
        self._signer = Signer(private_key)
        self.rpc, self.chain_id, self.r = rpc, chain_id, r
        self._lock_key = f"{key_prefix}:sendlock:{self.address}"
        self._nonce_key = f"{key_prefix}:nonce:{self.address}"
        self._approved: set[str] = set()
        self._public = PublicSubmitter(rpc)
        self._take, self._give_back = r.register_script(_TAKE), r.register_script(_GIVE_BACK)

    def __repr__(self) -> str:  # never show the key
        return f"Sender({self.address})"

    def simulate(self, to: str, data: str, expected_gas: int | None = None, gas_limit: int | None = None) -> Simulation:
        """The exact call against the pending block, with the base fee, in one round trip. With
        `expected_gas` / `gas_limit` (what liquidations have been using) it is one eth_call; without,
        eth_estimateGas runs too (its binary search re-executes the call several times)."""
        result = self.simulate_many([(to, data)], expected_gas, gas_limit)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def simulate_many(self, calls: list[tuple[str, str]], expected_gas: int | None = None,
                      gas_limit: int | None = None, with_nonce: bool = False,
                      gas: list[tuple[int, int]] | None = None) -> list[Simulation | SimulationFailed]:
        """`simulate` for several transactions in one batch; each gets its Simulation or its failure.
        `with_nonce`: our pending nonce rides along (a send right after needs no read of its own).
        `gas`: (expected, limit) per call, where calls differ (a flash liquidation costs more)."""
        txs = [{"from": self.address, "to": to, "data": data} for to, data in calls]
        head = [("eth_getBlockByNumber", ["latest", False])]
        if with_nonce:
            head.append(("eth_getTransactionCount", [self.address, "pending"]))
        batch = head + [("eth_call", [tx, "pending"]) for tx in txs]
        if expected_gas is None and gas is None:
            batch += [("eth_estimateGas", [tx, "pending"]) for tx in txs]
        replies = self.rpc.batch(batch, raise_errors=False)
        for reply in replies[: len(head)]:
            if isinstance(reply, RpcError):
                raise reply
        block, nonce, replies = replies[0], int(replies[1], 16) if with_nonce else None, replies[len(head):]
        base_fee = int(block.get("baseFeePerGas") or "0x0", 16)
        out: list[Simulation | SimulationFailed] = []
        for i in range(len(txs)):
            call, est = replies[i], (replies[len(txs) + i] if expected_gas is None and gas is None else None)
            failed = next((r for r in (call, est) if isinstance(r, RpcError)), None)
            if failed is not None:
                out.append(SimulationFailed(failed, base_fee, nonce))
            elif gas is not None:
                out.append(Simulation(gas[i][0], gas[i][1], base_fee, nonce, call))
            elif expected_gas is not None:
                out.append(Simulation(expected_gas, gas_limit or expected_gas * 3, base_fee, nonce, call))
            else:
                estimate = int(est, 16)
                out.append(Simulation(estimate, estimate * 12 // 10 + 20_000, base_fee, nonce, call))
        return out

    def simulate_in_order(self, sequences: list[list[tuple[str, str, int]]], first: dict | None = None
                          ) -> list[list[Simulation | SimulationFailed]]:
        """Each sequence of our calls (to, data, gas limit) in one eth_simulateV1 of its own, state carried from
        one call to the next, optionally right behind a transaction that is not mined yet (`first`, a call
        object: the pending price update we back-run); all in one batch with our pending nonce and the base
        fee. Each Simulation's `estimate` is the gas the call used there (a liquidation valid only after the
        update cannot be estimated on its own). On `latest`: the simulated block has the latest block's number
        and time, a second short of the next (interest of one second); our nonce is not checked there."""
        head = [("eth_getBlockByNumber", ["latest", False]), ("eth_getTransactionCount", [self.address, "pending"])]
        sims = [("eth_simulateV1", [{"blockStateCalls": [{"calls": ([first] if first else []) + [
            {"from": self.address, "to": to, "input": data, "gas": hex(limit)} for to, data, limit in seq]}]}, "latest"])
            for seq in sequences]
        replies = self.rpc.batch(head + sims, raise_errors=False)
        for reply in replies:
            if isinstance(reply, RpcError):
                raise reply
        base_fee, nonce = int(replies[0].get("baseFeePerGas") or "0x0", 16), int(replies[1], 16)
        out = []
        for seq, reply in zip(sequences, replies[2:], strict=True):
            results = reply[0]["calls"]
            if first:
                if int(results[0]["status"], 16) != 1:
                    raise SimulationFailed(RpcError("eth_simulateV1", {"message": "the pending update itself reverts",
                                                                       "data": results[0].get("returnData")}), base_fee, nonce)
                results = results[1:]
            out.append([self._simulated(r, limit, base_fee, nonce) for r, (_, _, limit) in zip(results, seq, strict=True)])
        return out

    @staticmethod
    def _simulated(r: dict, limit: int, base_fee: int, nonce: int) -> Simulation | SimulationFailed:
        if int(r["status"], 16) == 1:
            used = int(r["gasUsed"], 16)
            return Simulation(used, min(limit, used * 12 // 10 + 20_000), base_fee, nonce, r.get("returnData") or "0x")
        return SimulationFailed(RpcError("eth_simulateV1", {"message": "execution reverted", "data": r.get("returnData")}),
                                base_fee, nonce)

    def send(self, to: str, data: str, gas: int, fees: Fees) -> Sent:
        """One transaction through `send_many`; a refusal raises."""
        result = self.send_many([Tx(to, data, gas, fees)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def send_many(self, txs: list[Tx], before_send: Callable[[list[tuple[str, int]]], object] | None = None,
                  pending_nonce: int | None = None, *, submitter: Submitter | None = None,
                  ahead: Sequence[str] = (), reuse_nonce: bool = False) -> list[Sent | RpcError]:
        """Sign consecutive nonces and send them all at once through `submitter` (default: the public
        mempool, one JSON-RPC batch), under the account's lock. `before_send([(tx_hash, nonce), ...])`
        runs between signing and sending: a record of intent that survives the process being killed
        mid-send. `pending_nonce`, read with the snapshot, saves a round trip: the stored next nonce
        covers sends made since. `ahead`: other parties' raw transactions a bundle puts first (the
        public route orders by fees and ignores them).

        Public: a transaction the node refuses leaves a hole that would hold back every later nonce: the
        hole is filled with a zero-value transfer to ourselves, so the liquidations after it still mine.
        If the refused ones are the last, nothing is filled and the next send reuses their nonces.
        Bundle: no holes (all or nothing) and the stored nonce stays where it is (see the module doc).
        `reuse_nonce`: without `pending_nonce`, the stored next nonce, when there is one, is taken as is (no
        read); what the node refuses as used is signed again on the chain's nonce and sent once more. Any such
        refusal stores the chain's count for the next send."""
        submitter = submitter or self._public
        with self._account() as stored:
            guessed = pending_nonce is None and reuse_nonce and stored is not None
            if pending_nonce is None and not guessed:
                pending_nonce = self._chain_nonce()
            first = max(pending_nonce or 0, int(stored) if stored is not None else 0)
            out = self._submit(first, txs, before_send, submitter, ahead)
            if submitter.atomic:
                return out
            taken = [i for i, r in enumerate(out) if isinstance(r, RpcError) and any(m in str(r).lower() for m in NONCE_TAKEN)]
            if not taken:
                self._after_public_send(first, txs, out)
                return out
            # The nonce we went by was behind the chain: the account sent outside liqbot, a Redis failover lost the
            # last stored increments, or the caller's read is older than another worker's send.
            chain = self._chain_nonce()
            if guessed:  # nothing was read for this send: the refused ones again, on the chain's count
                for i, r in zip(taken, self._submit(chain, [txs[i] for i in taken], before_send, submitter, ahead),
                                strict=True):
                    out[i] = r
            else:
                self._after_public_send(first, txs, out)
            self._store_at_least(max([chain, *(r.nonce + 1 for r in out if isinstance(r, Sent))]))
            return out

    @contextmanager
    def _account(self) -> Iterator[str | None]:
        """Hold the account's send lock (one sender at a time, across processes); yields the stored next nonce,
        read in the same round trip (None when none is stored). Raises LockError after SEND_LOCK_WAIT_SECS."""
        token, deadline = os.urandom(8).hex(), time.monotonic() + SEND_LOCK_WAIT_SECS
        while True:
            got, stored = self._take(keys=[self._lock_key, self._nonce_key], args=[token, SEND_LOCK_MS])
            if int(got):
                break
            if time.monotonic() > deadline:
                raise LockError(f"the send lock of {self.address} is still held after {SEND_LOCK_WAIT_SECS:.0f} s")
            time.sleep(0.001)
        try:
            yield (stored.decode() if isinstance(stored, bytes) else stored) or None
        finally:
            self._give_back(keys=[self._lock_key], args=[token])

    def _store_at_least(self, next_nonce: int) -> None:
        """Under the lock: the next send starts at `next_nonce` or later, whatever its caller read before."""
        stored = self.r.get(self._nonce_key)
        if stored is None or int(stored) < next_nonce:
            log.warning("stored nonce %s behind the chain's: resynced to %d", stored, next_nonce)
            self.r.set(self._nonce_key, next_nonce, ex=NONCE_MEMORY_SECS)

    def _chain_nonce(self) -> int:
        return int(self.rpc.call("eth_getTransactionCount", self.address, "pending"), 16)

    def _submit(self, first: int, txs: list[Tx], before_send: Callable[[list[tuple[str, int]]], object] | None,
                submitter: Submitter, ahead: Sequence[str]) -> list[Sent | RpcError]:
        signed = [self._sign(first + i, tx) for i, tx in enumerate(txs)]
        if before_send:
            before_send([(tx_hash, first + i) for i, (tx_hash, _) in enumerate(signed)])
        sub = submitter.submit([raw for _, raw in signed], ahead)
        return [reply if isinstance(reply, RpcError) else Sent(reply or tx_hash, first + i, sub.bundle)
                for i, ((tx_hash, _), reply) in enumerate(zip(signed, sub.replies, strict=True))]

    def _after_public_send(self, first: int, txs: list[Tx], out: list[Sent | RpcError]) -> None:
        """Fill the holes refused transactions left and remember the next nonce (under the lock)."""
        accepted = [i for i, r in enumerate(out) if isinstance(r, Sent)]
        next_nonce = first + (accepted[-1] + 1 if accepted else 0)
        for i in range(accepted[-1] if accepted else 0):
            if isinstance(out[i], RpcError) and not self._fill(first + i, txs[i].fees):
                next_nonce = first + i  # unfilled: the next send takes this nonce and unblocks the rest
                break
        if next_nonce > first:
            self.r.set(self._nonce_key, next_nonce, ex=NONCE_MEMORY_SECS)

    def _sign(self, nonce: int, tx: Tx) -> tuple[str, str]:
        return self._signer.sign_1559(chain_id=self.chain_id, nonce=nonce, to=tx.to, data=tx.data, gas=tx.gas,
                                      max_fee=tx.fees.max_fee, tip=tx.fees.tip)

    def cancel(self, nonce: int, fees: Fees) -> str:
        """Replace whatever we sent at `nonce` by a zero-value transfer to ourselves (`fees` must outbid it);
        returns its hash, raises when the node refuses (e.g. the nonce is already mined)."""
        tx_hash, raw = self._sign(nonce, Tx(self.address, "0x", 21_000, fees))
        self.rpc.call("eth_sendRawTransaction", raw)
        return tx_hash

    def _fill(self, nonce: int, fees: Fees) -> bool:
        _, raw = self._sign(nonce, Tx(self.address, "0x", 21_000, fees))
        try:
            self.rpc.call("eth_sendRawTransaction", raw)
        except RpcError as exc:
            log.error("could not fill nonce %d after a refused liquidation: %s", nonce, exc)
            return False
        log.warning("nonce %d filled with a self-transfer after a refused liquidation", nonce)
        return True

    def forget_nonce(self) -> None:
        """After a reorg the chain's nonce may go back: stop trusting the stored one."""
        self.r.delete(self._nonce_key)

    def prepare_approvals(self, tokens: list[str], spender: str, fees: Fees, send: bool) -> list[str]:
        """At start-up, not mid-liquidation: learn which tokens the spender may already pull, and
        (with `send`) approve every token we hold but have not approved yet. One process at a time
        does it, so workers starting together do not each send the same approvals. Returns the
        tokens approved now."""
        done: list[str] = []
        with self.r.lock(f"{self._lock_key}:approvals", timeout=60, blocking_timeout=60):
            calls = [("eth_call", [{"to": t, "data": aave.ALLOWANCE.calldata(self.address, spender)}, "latest"]) for t in tokens]
            calls += [("eth_call", [{"to": t, "data": aave.BALANCE_OF.calldata(self.address)}, "latest"]) for t in tokens]
            replies = self.rpc.batch(calls)
            for i, token in enumerate(tokens):
                if aave.ALLOWANCE.decode(replies[i]) >= APPROVED_ENOUGH or self._approval_pending(token, spender):
                    self._approved.add(token)
                elif send and aave.BALANCE_OF.decode(replies[len(tokens) + i]) > 0:
                    self._approve(token, spender, fees)
                    done.append(token)
        return done

    def approved(self, token: str) -> bool:
        """Known approved by this process (no round trip)."""
        return token in self._approved

    def ensure_approved(self, token: str, spender: str, fees: Fees) -> None:
        """Approve `spender` for the token once: kept on chain, remembered per process, and announced
        in Redis while it mines so that other processes do not send the same approval."""
        if token in self._approved:
            return
        if not self._approval_pending(token, spender):
            allowance = aave.ALLOWANCE.decode(self.rpc.eth_call(token, aave.ALLOWANCE.calldata(self.address, spender)))
            if allowance < APPROVED_ENOUGH:
                self._approve(token, spender, fees)
        self._approved.add(token)

    def _approval_key(self, token: str, spender: str) -> str:
        return f"{self._lock_key}:approval:{token}:{spender}"

    def _approval_pending(self, token: str, spender: str) -> bool:
        return bool(self.r.exists(self._approval_key(token, spender)))

    def _approve(self, token: str, spender: str, fees: Fees) -> None:
        data = aave.APPROVE.calldata(spender, aave.UINT256_MAX)
        sent = self.send(token, data, self.simulate(token, data).gas, fees)
        self.r.set(self._approval_key(token, spender), sent.tx_hash, ex=APPROVAL_PENDING_SECS)
        self._approved.add(token)
        log.info("approved %s for %s (tx %s)", token, spender, sent.tx_hash)

