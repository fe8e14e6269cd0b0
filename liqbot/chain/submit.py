"""Submission routes: how signed transactions leave us.

`public`: each raw transaction to our node (eth_sendRawTransaction, one JSON-RPC batch), into the public
mempool, where ordering behind a pending transaction is a matter of fees. `bundle`: our transactions,
optionally behind other parties' raw transactions (a pending oracle update we back-run), as one atomic
bundle (`eth_sendBundle`) to every configured relay, for the next block or the next few: a builder
includes the whole bundle in that order, or none of it, and nobody sees our transactions before the
block. Each relay request carries `X-Flashbots-Signature: <address>:<signature>`, an EIP-191
signature of the hex keccak of the request body by a key that only identifies us as a searcher (it
holds no funds and is never the liquidator key).

`raw_transaction` rebuilds the signed bytes of someone else's transaction from the JSON a node shows
(pending block, subscription, eth_getTransactionByHash), which is what a bundle has to carry.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
import rlp
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from liqbot.chain.rpc import Rpc
from liqbot.errors import LiqbotError, RpcError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Flashbots-Signature"
# A relay that has not answered within this has missed the block anyway, and the account's send lock
# is held meanwhile.
RELAY_TIMEOUT_SECS = 3.0


class BadTransaction(LiqbotError):
    """A node's transaction JSON does not rebuild into the bytes that were signed (or is of a type we
    cannot encode): never put it in a bundle, the bundle would be refused or land without it."""


# ----------------------------------------------------------------------------------------------------
# Raw transactions from a node's JSON (pure)

def _int(tx: dict, key: str) -> int:
    value = tx.get(key)
    if value is None:
        raise BadTransaction(f"transaction {tx.get('hash')}: no {key}")
    return int(value, 16) if isinstance(value, str) else int(value)


def _bytes(value: str | None) -> bytes:
    return bytes.fromhex(value.removeprefix("0x")) if value else b""


def _access_list(tx: dict) -> list[list[Any]]:
    return [[_bytes(item["address"]), [_bytes(k) for k in item.get("storageKeys", [])]]
            for item in tx.get("accessList") or []]


def _y_parity(tx: dict) -> int:
    """Typed transactions sign with y parity 0/1; nodes show it as `yParity` and repeat it in `v`."""
    return _int(tx, "yParity" if tx.get("yParity") is not None else "v")


def raw_transaction(tx: dict) -> str:
    """The signed raw bytes (0x-hex) of a transaction, rebuilt from the full JSON object a node returns:
    legacy (with its EIP-155 `v` as shown), EIP-2930 and EIP-1559. Raises BadTransaction unless
    keccak(raw) is the transaction's hash, so a wrong rebuild never reaches a relay."""
    kind = _int(tx, "type") if tx.get("type") is not None else 0
    data, to = _bytes(tx.get("input", tx.get("data"))), _bytes(tx.get("to"))
    common = [_int(tx, "nonce")]
    if kind == 0:
        fields = [*common, _int(tx, "gasPrice"), _int(tx, "gas"), to, _int(tx, "value"), data,
                  _int(tx, "v"), _int(tx, "r"), _int(tx, "s")]
        raw = rlp.encode(fields)
    elif kind in (1, 2):
        fees = [_int(tx, "gasPrice")] if kind == 1 else [_int(tx, "maxPriorityFeePerGas"), _int(tx, "maxFeePerGas")]
        fields = [_int(tx, "chainId"), *common, *fees, _int(tx, "gas"), to, _int(tx, "value"), data,
                  _access_list(tx), _y_parity(tx), _int(tx, "r"), _int(tx, "s")]
        raw = bytes([kind]) + rlp.encode(fields)
    else:
        raise BadTransaction(f"transaction {tx.get('hash')}: type {kind} cannot be rebuilt (only 0, 1 and 2)")
    rebuilt = "0x" + keccak(raw).hex()
    if rebuilt != str(tx.get("hash", "")).lower():
        raise BadTransaction(f"transaction {tx.get('hash')}: rebuilt bytes hash to {rebuilt}")
    return "0x" + raw.hex()


def tx_hash(raw: str) -> str:
    return "0x" + keccak(_bytes(raw)).hex()


# ----------------------------------------------------------------------------------------------------
# Relay request signing (pure)

def relay_signature(body: bytes, signer: LocalAccount | str) -> str:
    """The X-Flashbots-Signature value for exactly these body bytes: `<address>:<signature>`, the
    signature being EIP-191 personal_sign of the 0x-hex keccak256 of the body (the text, not the 32
    bytes), as relays check it."""
    account = Account.from_key(signer) if isinstance(signer, str) else signer
    signed = account.sign_message(encode_defunct(text="0x" + keccak(body).hex()))
    return f"{account.address}:0x{bytes(signed.signature).hex()}"


# ----------------------------------------------------------------------------------------------------
# Routes

@dataclass(frozen=True)
class Submission:
    replies: list[str | RpcError | None]  # per transaction of ours: its hash (None: not echoed) or the refusal
    bundle: BundleResult | None = None  # the bundle route's per-relay, per-block answers


class Submitter(ABC):
    """Takes our signed raw transactions (consecutive nonces) and gets them to block builders."""

    route: ClassVar[str]
    # True: the transactions land together or not at all, so a refusal leaves no nonce hole and an
    # acceptance is no promise that the nonces are used (see Sender.send_many).
    atomic: ClassVar[bool]

    @abstractmethod
    def submit(self, raws: Sequence[str], ahead: Sequence[str] = ()) -> Submission:
        """Send; one reply per transaction of ours, in order. `ahead`: other parties' raw transactions
        that must come first, where the route can order them."""


class PublicSubmitter(Submitter):
    """The public mempool through our node: what liqbot always did."""

    route = "public"
    atomic = False

    def __init__(self, rpc: Rpc):
        self.rpc = rpc

    def submit(self, raws: Sequence[str], ahead: Sequence[str] = ()) -> Submission:
        # `ahead` is not ours to send: behind a pending update we are ordered by fees (equal max fee).
        return Submission(self.rpc.batch([("eth_sendRawTransaction", [raw]) for raw in raws], raise_errors=False))


@dataclass(frozen=True)
class RelayReply:
    url: str
    block: int
    bundle_hash: str | None = None
    error: RpcError | None = None


@dataclass(frozen=True)
class BundleResult:
    txs: tuple[str, ...]
    blocks: tuple[int, ...]
    replies: tuple[RelayReply, ...]

    @property
    def accepted(self) -> bool:
        """Some relay took it for some block: it may land; nothing more is known until a block shows it."""
        return any(r.error is None for r in self.replies)

    @property
    def errors(self) -> dict[str, list[RpcError]]:
        out: dict[str, list[RpcError]] = {}
        for r in self.replies:
            if r.error is not None:
                out.setdefault(r.url, []).append(r.error)
        return out


class BundleRefused(RpcError):
    """Every relay refused the bundle (or could not be reached), for every target block."""

    def __init__(self, result: BundleResult):
        self.result = result
        why = "; ".join(f"{url}: {', '.join(str(e) for e in errs)}" for url, errs in result.errors.items())
        super().__init__("eth_sendBundle", {"message": f"refused by every relay ({why})"})


class BundleSubmitter(Submitter):
    """One atomic bundle, [*ahead, *ours], to every relay, for the next `blocks` blocks."""

    route = "bundle"
    atomic = True

    def __init__(self, rpc: Rpc, relay_urls: Sequence[str], signing_key: str, blocks: int = 1,
                 timeout: float = RELAY_TIMEOUT_SECS):
        if not relay_urls:
            raise ValueError("a bundle route needs at least one relay URL")
        self.rpc, self.relay_urls, self.blocks, self.timeout = rpc, tuple(relay_urls), blocks, timeout
        self._account = Account.from_key(signing_key)
        self.signer: str = self._account.address
        # A session per relay, used by one thread at a time; relays are asked in parallel.
        self._sessions = {url: requests.Session() for url in self.relay_urls}
        self._pool = ThreadPoolExecutor(max_workers=len(self.relay_urls), thread_name_prefix="relay")

    def __repr__(self) -> str:  # never show the key
        return f"BundleSubmitter(signer={self.signer}, relays={len(self.relay_urls)}, blocks={self.blocks})"

    def submit(self, raws: Sequence[str], ahead: Sequence[str] = ()) -> Submission:
        result = self.send_bundle([*ahead, *raws])
        if not result.accepted:
            refused = BundleRefused(result)
            return Submission([refused for _ in raws], result)
        return Submission([tx_hash(raw) for raw in raws], result)

    def send_bundle(self, txs: Sequence[str], next_block: int | None = None) -> BundleResult:
        """Send `txs` as one bundle for `next_block` (default: the block after our node's latest) and the
        `blocks - 1` after it. Never retried: an unanswered relay may still have it."""
        if next_block is None:
            next_block = int(self.rpc.call("eth_blockNumber"), 16) + 1
        blocks = tuple(range(next_block, next_block + self.blocks))
        futures = [self._pool.submit(self._ask_relay, url, list(txs), blocks) for url in self.relay_urls]
        replies = tuple(r for f in futures for r in f.result())
        result = BundleResult(tuple(txs), blocks, replies)
        for url, errs in result.errors.items():
            for err in errs:
                log.warning("relay %s refused a bundle of %d txs: %s", url, len(txs), err)
        log.info("bundle of %d txs for blocks %s accepted by %d of %d relays", len(txs), blocks,
                 len({r.url for r in replies if r.error is None}), len(self.relay_urls))
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        for s in self._sessions.values():
            s.close()

    def _ask_relay(self, url: str, txs: list[str], blocks: tuple[int, ...]) -> list[RelayReply]:
        out = []
        for block in blocks:
            try:
                result = self._post(url, "eth_sendBundle", {"txs": txs, "blockNumber": hex(block)})
                out.append(RelayReply(url, block, (result or {}).get("bundleHash")))
            except RpcError as exc:
                out.append(RelayReply(url, block, error=exc))
        return out

    def _post(self, url: str, method: str, params: dict) -> Any:
        """One signed JSON-RPC request (relays take no batches). A relay refusing the signature answers
        with an HTTP error status and a JSON error body: that body is the reason reported."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": [params]},
                          separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: relay_signature(body, self._account)}
        try:
            resp = self._sessions[url].post(url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RpcError(method, {"message": f"relay unreachable: {exc}"}) from exc
        try:
            reply = resp.json()
        except ValueError:
            raise RpcError(method, {"code": resp.status_code, "message": f"HTTP {resp.status_code}: {resp.text[:200]}"}) from None
        error = reply.get("error") if isinstance(reply, dict) else {"message": f"unexpected reply {reply!r:.200}"}
        if error is None and resp.status_code >= 400:
            error = {"message": f"HTTP {resp.status_code}"}
        if error is not None:
            raise RpcError(method, error if isinstance(error, dict) else {"code": resp.status_code, "message": str(error)})
        return reply.get("result")


def build_submitter(rpc: Rpc, route: str, relay_urls: Sequence[str] = (), signing_key: str | None = None,
                    blocks: int = 1) -> Submitter:
    """The submitter SUBMIT_ROUTE names (settings have checked what the bundle route needs)."""
    if route == "bundle":
        if signing_key is None:
            raise ValueError("a bundle route needs a relay signing key")
        return BundleSubmitter(rpc, relay_urls, signing_key, blocks)
    return PublicSubmitter(rpc)
