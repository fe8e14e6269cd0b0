"""A small synchronous JSON-RPC client with batching.

web3.py's middleware stack costs more than the call itself on a local node; the scanner and the
devnet send thousands of calls, so they speak JSON-RPC directly and batch whatever they can.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import requests

from liqbot.errors import RpcError


class Rpc:
    def __init__(self, url: str, timeout: float = 30.0):
        self.url = url
        self.timeout = timeout
        self._session = requests.Session()
        self._ids = itertools.count(1)

    def call(self, method: str, *params: Any) -> Any:
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        reply = self._post(payload)
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
        replies = self._post(payload)
        if isinstance(replies, dict):  # the node rejected the whole batch
            raise RpcError("batch", replies.get("error", replies))
        by_id = {r["id"]: r for r in replies}
        out: list[Any] = []
        for req in payload:
            r = by_id[req["id"]]
            if "error" in r:
                err = RpcError(req["method"], r["error"])
                if raise_errors:
                    raise err
                out.append(err)
            else:
                out.append(r["result"])
        return out

    def eth_call(self, to: str, data: str, block: str = "latest") -> str:
        return self.call("eth_call", {"to": to, "data": data}, block)

    def close(self) -> None:
        self._session.close()

    def _post(self, payload: Any) -> Any:
        resp = self._session.post(self.url, json=payload, timeout=self.timeout)
        resp.raise_for_status()
        return resp.json()
