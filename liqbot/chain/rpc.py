"""A small synchronous JSON-RPC client with batching and safe retries.

web3.py's middleware stack costs more than the call itself on a local node; the scanner and the
devnet send thousands of calls, so they speak JSON-RPC directly and batch whatever they can.
Reads are retried with backoff and jitter on transport errors and 5xx/429 answers; anything that
sends a transaction is never retried here (a retried send can double-spend a nonce or a liquidation).
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

import requests

from liqbot.errors import RpcError

log = logging.getLogger(__name__)

NEVER_RETRY = frozenset({"eth_sendRawTransaction", "eth_sendTransaction"})
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class RpcUnavailable(RpcError):
    """The node could not be reached or kept failing after the retries."""

    def __init__(self, method: str, cause: Exception):
        super().__init__(method, {"message": f"node unavailable: {cause}"})


class Rpc:
    def __init__(self, url: str, timeout: float = 30.0, retries: int = 3, backoff: float = 0.1):
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._session = requests.Session()
        self._ids = itertools.count(1)

    def call(self, method: str, *params: Any) -> Any:
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        reply = self._post(payload, retry=method not in NEVER_RETRY, what=method)
        if "error" in reply:
            raise RpcError(method, reply["error"])
        return reply["result"]

    def batch(self, calls: Iterable[tuple[str, Sequence[Any]]], *, raise_errors: bool = True) -> list[Any]:
        """Send many calls in one HTTP request; results come back in call order.

        With `raise_errors=False` a failed call yields its RpcError in place of a result.
        """
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)} for i, (m, p) in enumerate(calls)
        ]
        if not payload:
            return []
        retry = not any(p["method"] in NEVER_RETRY for p in payload)
        replies = self._post(payload, retry=retry, what=f"batch of {len(payload)}")
        if isinstance(replies, dict):  # the node rejected the whole batch
            raise RpcError("batch", replies.get("error", replies))
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        out: list[Any] = []
        for req in payload:
            r = by_id.get(req["id"], {"error": {"message": "no reply in the batch"}})
            if "error" in r:
                err = RpcError(req["method"], r["error"])
                if raise_errors:
                    raise err
                out.append(err)
            else:
                out.append(r.get("result"))
        return out

    def eth_call(self, to: str, data: str, block: str = "latest") -> str:
        return self.call("eth_call", {"to": to, "data": data}, block)

    def close(self) -> None:
        self._session.close()

    def _post(self, payload: Any, *, retry: bool, what: str) -> Any:
        attempts = self.retries if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                resp = self._session.post(self.url, json=payload, timeout=self.timeout)
                if resp.status_code in RETRY_STATUS and attempt < attempts:
                    raise requests.HTTPError(f"HTTP {resp.status_code}")
                resp.raise_for_status()
                return resp.json()
            except (requests.ConnectionError, requests.Timeout, requests.HTTPError, ValueError) as exc:
                if attempt >= attempts:
                    raise RpcUnavailable(what, exc) from exc
                delay = self.backoff * 2 ** (attempt - 1) * (1 + random.random())
                log.warning("rpc %s failed (%s); retry %d/%d in %.2fs", what, exc, attempt, attempts - 1, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")
