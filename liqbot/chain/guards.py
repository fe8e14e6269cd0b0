"""What the lane knows without a read, read in the background in one batch: our balances (chain/inventory.py)
and what makes a liquidation revert that the mirror does not model: a PriceOracleSentinel (an L2 market's
sequencer check) or a liquidation grace period running on a reserve (v3.1+). While either is there, plans
are verified by simulation (execution.trusted_jobs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from liqbot.chain import aave
from liqbot.chain.abi import Function
from liqbot.chain.rpc import Rpc
from liqbot.config import ZERO_ADDRESS
from liqbot.errors import RpcError


def lane_view(rpc: Rpc, provider: str, pool: str, owner: str, assets: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """`owner`'s balance of every asset and the trust blockers, in one batch at the latest block."""
    calls = [("eth_getBlockByNumber", ["latest", False]),
             ("eth_call", [{"to": provider, "data": aave.GET_PRICE_ORACLE_SENTINEL.calldata()}, "latest"])]
    calls += [("eth_call", [{"to": pool, "data": aave.GET_LIQUIDATION_GRACE_PERIOD.calldata(a)}, "latest"]) for a in assets]
    calls += [("eth_call", [{"to": a, "data": aave.BALANCE_OF.calldata(owner)}, "latest"]) for a in assets]
    replies = rpc.batch(calls, raise_errors=False)
    block, sentinel, graces, balances = replies[0], replies[1], replies[2 : 2 + len(assets)], replies[2 + len(assets) :]
    for reply in (block, *balances):
        if isinstance(reply, RpcError):
            raise reply
    held = {a: aave.BALANCE_OF.decode(raw) for a, raw in zip(assets, balances, strict=True)}
    return held, blockers_from(sentinel, graces, assets, int(block["timestamp"], 16))


def blockers_from(sentinel: object, graces: Sequence[object], assets: Sequence[str], now: int) -> list[str]:
    """Pure: the replies (a failed or empty call: no such function on that revision) -> reasons."""
    out = []
    address = _decoded(aave.GET_PRICE_ORACLE_SENTINEL, sentinel)
    if address is not None and int(address, 16) != int(ZERO_ADDRESS, 16):
        out.append(f"a PriceOracleSentinel is set ({address})")
    for asset, raw in zip(assets, graces, strict=True):
        until = _decoded(aave.GET_LIQUIDATION_GRACE_PERIOD, raw)
        if until is not None and until > now:
            out.append(f"liquidation grace period on {asset} until {until}")
    return out


def _decoded(fn: Function, raw: object) -> Any:
    if not isinstance(raw, str):
        return None
    try:
        return fn.decode(raw)
    except Exception:  # "0x" from a contract without the function (a fallback), or garbage
        return None
