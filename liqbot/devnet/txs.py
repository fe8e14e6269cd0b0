"""Send devnet transactions from unlocked (or impersonated) accounts without waiting on each.

Nonces are tracked locally and gas limits are fixed, so transactions go out back to back;
`settle()` then checks every receipt and, for a failure, replays it as eth_call to get Aave's
numeric revert reason (a fixed gas limit hides it otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rlp
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from liqbot.chain.abi import Function
from liqbot.chain.rpc import Rpc
from liqbot.devnet.artifacts import Artifact
from liqbot.errors import DevnetError, RpcError

DEPLOY_GAS = 12_000_000
CALL_GAS = 2_000_000


def create_address(sender: str, nonce: int) -> str:
    return to_checksum_address(keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[12:])


def _abi_type(param: dict) -> str:
    t = param["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + t[len("tuple") :]
    return t


def constructor_data(artifact: Artifact, args: Sequence[Any], libraries: dict[str, str] | None = None) -> str:
    ctor = next((x for x in artifact.abi if x["type"] == "constructor"), {"inputs": []})
    types = [_abi_type(i) for i in ctor["inputs"]]
    return artifact.linked(libraries or {}) + encode(types, list(args)).hex()


@dataclass
class _Pending:
    label: str
    tx: dict
    tx_hash: str


class TxSender:
    def __init__(self, rpc: Rpc):
        self.rpc = rpc
        self._nonces: dict[str, int] = {}
        self._pending: list[_Pending] = []

    def nonce(self, sender: str) -> int:
        if sender not in self._nonces:
            self._nonces[sender] = int(self.rpc.call("eth_getTransactionCount", sender, "pending"), 16)
        return self._nonces[sender]

    def _tx(self, sender: str, to: str | None, data: str, gas: int, value: int = 0) -> dict:
        tx = {"from": sender, "data": data, "gas": hex(gas), "nonce": hex(self.nonce(sender))}
        if to:
            tx["to"] = to
        if value:
            tx["value"] = hex(value)
        self._nonces[sender] += 1
        return tx

    def deploy(self, sender: str, artifact: Artifact, *args: Any, libraries: dict[str, str] | None = None) -> str:
        address = create_address(sender, self.nonce(sender))
        self._send(artifact.name, self._tx(sender, None, constructor_data(artifact, args, libraries), DEPLOY_GAS))
        return address

    def call(self, sender: str, to: str, fn: Function, *args: Any, gas: int = CALL_GAS, label: str = "") -> None:
        self._send(label or fn.name, self._tx(sender, to, fn.calldata(*args), gas))

    def queue(self, sender: str, to: str, fn: Function, *args: Any, gas: int = CALL_GAS, label: str = "") -> dict:
        """Build a transaction without sending it, for `send_batch`."""
        tx = self._tx(sender, to, fn.calldata(*args), gas)
        tx["_label"] = label or fn.name
        return tx

    def send_batch(self, txs: list[dict]) -> None:
        """One JSON-RPC batch; only safe when no transaction depends on another sender's in it."""
        clean = [{k: v for k, v in tx.items() if k != "_label"} for tx in txs]
        hashes = self.rpc.batch([("eth_sendTransaction", [t]) for t in clean], raise_errors=False)
        for tx, clean_tx, h in zip(txs, clean, hashes, strict=True):
            if isinstance(h, RpcError):
                raise DevnetError(f"{tx['_label']} was refused: {h}")
            self._pending.append(_Pending(tx["_label"], clean_tx, h))

    def _send(self, label: str, tx: dict) -> None:
        try:
            self._pending.append(_Pending(label, tx, self.rpc.call("eth_sendTransaction", tx)))
        except RpcError as exc:
            raise DevnetError(f"{label} was refused: {exc}") from exc

    def sent_hashes(self) -> list[str]:
        """Hashes of what was sent and not settled yet, in sending order."""
        return [p.tx_hash for p in self._pending]

    def settle(self, chunk: int = 500, timeout: float = 60.0) -> list[dict]:
        """Wait for every pending receipt; raise with the label and revert reason of the first failure.
        Under interval mining this spans blocks, so `timeout` counts from the last receipt, and what the
        node dropped from its pool is sent again (anvil drops a sender's later transactions when an
        earlier one does not fit the block)."""
        pending, self._pending = self._pending, []
        receipts: list[dict | None] = [None] * len(pending)
        deadline = time.monotonic() + timeout
        head = None
        # Only interval mining drops transactions; under automine a send the node has not shown yet is still
        # being mined, and sending it again (a new nonce) would do it twice.
        automine = bool(pending) and self.rpc.call("anvil_getAutomine")
        while True:
            before = [i for i, r in enumerate(receipts) if r is None]
            for j in range(0, len(before), chunk):
                idx = before[j : j + chunk]
                got = self.rpc.batch([("eth_getTransactionReceipt", [pending[i].tx_hash]) for i in idx])
                for i, r in zip(idx, got, strict=True):
                    receipts[i] = r
            missing = [i for i, r in enumerate(receipts) if r is None]
            if not missing:
                break
            if len(missing) < len(before):
                deadline = time.monotonic() + timeout
            block = self.rpc.call("eth_blockNumber")
            if head is not None and block != head and not automine:
                self._resend_dropped([pending[i] for i in missing], chunk)
            head = block
            if time.monotonic() > deadline:
                p = pending[missing[0]]
                raise DevnetError(f"{p.label}: transaction {p.tx_hash} not mined within {timeout}s")
            time.sleep(0.05)
        for p, r in zip(pending, receipts, strict=True):
            assert r is not None
            if int(r["status"], 16) != 1:
                raise DevnetError(f"{p.label} reverted: {self._reason(p.tx, r)}")
        return receipts  # type: ignore[return-value]

    def _resend_dropped(self, missing: list[_Pending], chunk: int) -> None:
        """After a new block: send again, in nonce order, what is neither mined nor in the node's pool."""
        dropped = []
        for j in range(0, len(missing), chunk):
            part = missing[j : j + chunk]
            known = self.rpc.batch([("eth_getTransactionByHash", [p.tx_hash]) for p in part])
            dropped += [p for p, tx in zip(part, known, strict=True) if tx is None]
        for p in dropped:
            try:
                p.tx_hash = self.rpc.call("eth_sendTransaction", p.tx)
            except RpcError as exc:
                raise DevnetError(f"{p.label}: dropped by the node and refused when sent again: {exc}") from exc

    def _reason(self, tx: dict, receipt: dict) -> str:
        call = {k: v for k, v in tx.items() if k != "nonce"}
        parent = hex(int(receipt["blockNumber"], 16) - 1)
        try:
            self.rpc.call("eth_call", call, parent)
        except RpcError as exc:
            return str(exc)
        return f"out of gas? used {int(receipt['gasUsed'], 16)} of {int(tx['gas'], 16)}"
