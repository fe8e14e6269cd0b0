"""Batched reads of user health and positions: one HTTP round trip for many users."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from liqbot.chain import aave
from liqbot.chain.rpc import Rpc
from liqbot.domain.health import AccountData


def _call(to: str, data: str, block: str = "latest") -> tuple[str, list]:
    return ("eth_call", [{"to": to, "data": data}, block])


_SELECTOR = "0x" + aave.GET_USER_ACCOUNT_DATA.selector.hex()


def account_calldata(user: str) -> str:
    """getUserAccountData(user), built by hand: the scanner encodes 100k of these per pass."""
    return f"{_SELECTOR}{'0' * 24}{user[2:].lower()}"


def decode_account(user: str, raw: str) -> AccountData:
    """Six uint256 words; slicing the hex is ~10x faster than a generic ABI decoder."""
    if len(raw) < 2 + 6 * 64:
        raise ValueError(f"short getUserAccountData reply for {user}: {raw[:80]}")
    w = [int(raw[2 + 64 * i : 66 + 64 * i], 16) for i in range(6)]
    return AccountData(user, w[0], w[1], w[2], w[3], w[4], w[5])


def account_data(rpc: Rpc, pool: str, users: Sequence[str], batch_size: int = 500,
                 block: str = "latest") -> dict[str, AccountData]:
    """`getUserAccountData` for every user, `batch_size` calls per HTTP request. A user whose call
    fails (a malformed address, a node error) is left out rather than failing the batch."""
    out: dict[str, AccountData] = {}
    for start in range(0, len(users), batch_size):
        chunk = users[start : start + batch_size]
        results = rpc.batch([_call(pool, account_calldata(u), block) for u in chunk], raise_errors=False)
        for user, raw in zip(chunk, results, strict=True):
            if isinstance(raw, str):
                try:
                    out[user] = decode_account(user, raw)
                except ValueError:
                    continue
    return out


def liquidatable(accounts: Iterable[AccountData]) -> list[AccountData]:
    return [a for a in accounts if a.liquidatable]
