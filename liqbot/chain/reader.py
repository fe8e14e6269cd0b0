"""Batched reads of user health and positions: one HTTP round trip for many users."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.domain.health import AccountData
from liqbot.errors import RpcError


def _call(to: str, data: str, block: str = "latest") -> tuple[str, list]:
    return ("eth_call", [{"to": to, "data": data}, block])


def account_data(rpc: Rpc, pool: str, users: Sequence[str], batch_size: int = 500,
                 block: str = "latest") -> dict[str, AccountData]:
    """`getUserAccountData` for every user, `batch_size` calls per HTTP request. A user whose call
    fails (a malformed address, a node error) is left out rather than failing the batch."""
    out: dict[str, AccountData] = {}
    for start in range(0, len(users), batch_size):
        chunk = users[start : start + batch_size]
        results = rpc.batch([_call(pool, aave.GET_USER_ACCOUNT_DATA.calldata(u), block) for u in chunk], raise_errors=False)
        for user, raw in zip(chunk, results, strict=True):
            if isinstance(raw, RpcError):
                continue
            out[user] = AccountData(user, *aave.GET_USER_ACCOUNT_DATA.decode(raw))
    return out


def liquidatable(accounts: Iterable[AccountData]) -> list[AccountData]:
    return [a for a in accounts if a.liquidatable]
