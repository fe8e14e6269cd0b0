"""A bundle relay double: what liqbot's bundle route talks to in tests, since no relay is reachable here.

It speaks `eth_sendBundle` as relays document it (one JSON-RPC request, no batches), checks every
request's `X-Flashbots-Signature` the way a relay does (the address must be the one that signed the
hex keccak of the body, EIP-191) and refuses a missing or wrong one with HTTP 403 and a JSON-RPC
error, records what it got, and (given a node) forwards each bundle's transactions to it one after the
other, in bundle order. On anvil under interval mining with equal max fees, arrival order is block
order, so a bundle [update, liquidation] lands in one block in that order. Unlike a builder it cannot
make the bundle atomic: a transaction the node refuses is recorded and the rest still go.

    with RelayDouble(forward_to=chain.anvil.http_url) as relay:
        ... BundleSubmitter(rpc, [relay.url], key) ...
        relay.bundles  # [Bundle(txs, block, signer), ...]
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from liqbot.chain.rpc import Rpc
from liqbot.errors import RpcError

INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601


@dataclass(frozen=True)
class Bundle:
    txs: list[str]
    block: int
    signer: str


@dataclass
class Forwarded:
    tx_hash: str
    reply: str | None = None  # the node's answer: the hash
    error: str | None = None  # or its refusal


class SignatureRefused(Exception):
    pass


def signer_of(header: str | None, body: bytes) -> str:
    """The address a relay credits the request to; SignatureRefused when the header is missing, malformed
    or signed by someone else than it names."""
    if not header:
        raise SignatureRefused("missing X-Flashbots-Signature header")
    address, _, signature = header.partition(":")
    try:
        recovered = Account.recover_message(encode_defunct(text="0x" + keccak(body).hex()), signature=signature)
    except Exception:  # any malformed signature is a refusal, as it is at a relay
        raise SignatureRefused(f"error in signature check {address}") from None
    if recovered.lower() != address.lower():
        raise SignatureRefused(f"error in signature check {address}")
    return recovered


@dataclass
class RelayDouble:
    forward_to: str | None = None  # a node's HTTP URL; None: record only
    refuse_with: str | None = None  # answer every bundle with this error message (a relay that says no)
    bundles: list[Bundle] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why requests were turned away
    forwarded: list[Forwarded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="relay-double", daemon=True)
        self._rpc = Rpc(self.forward_to, retries=1) if self.forward_to else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RelayDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._rpc:
            self._rpc.close()

    def answer(self, body: bytes, header: str | None) -> tuple[int, dict]:
        """(HTTP status, JSON reply) for one request, as a relay would give them."""
        try:
            signer = signer_of(header, body)
        except SignatureRefused as exc:
            return self._refuse(403, None, INVALID_REQUEST, str(exc))
        try:
            request = json.loads(body)
        except ValueError:
            return self._refuse(400, None, INVALID_REQUEST, "invalid JSON")
        if not isinstance(request, dict):
            return self._refuse(400, None, INVALID_REQUEST, "batch requests are not supported")
        rid, method, params = request.get("id"), request.get("method"), request.get("params") or [None]
        if method != "eth_sendBundle":
            return self._refuse(200, rid, METHOD_NOT_FOUND, f"the method {method} does not exist/is not available")
        bundle = params[0] if isinstance(params[0], dict) else {}
        txs, block = bundle.get("txs"), bundle.get("blockNumber")
        if not (isinstance(txs, list) and txs and all(isinstance(t, str) and t.startswith("0x") for t in txs)
                and isinstance(block, str) and block.startswith("0x")):
            return self._refuse(200, rid, INVALID_PARAMS, "invalid params: txs and a hex blockNumber are required")
        if self.refuse_with:
            return self._refuse(200, rid, -32000, self.refuse_with)
        hashes = ["0x" + keccak(bytes.fromhex(t[2:])).hex() for t in txs]
        with self._lock:
            self.bundles.append(Bundle(txs, int(block, 16), signer))
            self._forward(txs, hashes)
        bundle_hash = "0x" + keccak(b"".join(bytes.fromhex(h[2:]) for h in hashes)).hex()
        return 200, {"jsonrpc": "2.0", "id": rid, "result": {"bundleHash": bundle_hash}}

    def _forward(self, txs: list[str], hashes: list[str]) -> None:
        """One after the other, in bundle order; a transaction already forwarded (the same bundle for a
        later block) is not sent again."""
        if self._rpc is None:
            return
        done = {f.tx_hash for f in self.forwarded}
        for raw, tx_hash in zip(txs, hashes, strict=True):
            if tx_hash in done:
                continue
            try:
                self.forwarded.append(Forwarded(tx_hash, reply=self._rpc.call("eth_sendRawTransaction", raw)))
            except RpcError as exc:
                self.forwarded.append(Forwarded(tx_hash, error=str(exc)))

    def _refuse(self, status: int, rid: Any, code: int, message: str) -> tuple[int, dict]:
        with self._lock:
            self.refused.append(message)
        return status, {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def _handler(relay: RelayDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, reply = relay.answer(body, self.headers.get("X-Flashbots-Signature"))
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows what matters
            pass

    return Handler
