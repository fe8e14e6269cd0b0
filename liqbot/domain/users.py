"""Whose position an Aave event moved. Topic 1 of Supply/Borrow/Withdraw/Repay is the reserve,
not a user: the user is `onBehalfOf` for Supply and Borrow and `user` for the rest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from liqbot.domain.units import ZERO_ADDRESS

USER_ARGS: Mapping[str, tuple[str, ...]] = {
    "Supply": ("onBehalfOf",),
    "Borrow": ("onBehalfOf",),
    "Withdraw": ("user",),
    "Repay": ("user",),
    "ReserveUsedAsCollateralEnabled": ("user",),
    "ReserveUsedAsCollateralDisabled": ("user",),
    "UserEModeSet": ("user",),
    "LiquidationCall": ("user",),
    "BalanceTransfer": ("from", "to"),
}

RESERVE_ARG: Mapping[str, str] = {
    "Supply": "reserve", "Borrow": "reserve", "Withdraw": "reserve", "Repay": "reserve",
    "ReserveUsedAsCollateralEnabled": "reserve", "ReserveUsedAsCollateralDisabled": "reserve",
}


def affected_users(event: str, args: Mapping[str, Any]) -> list[str]:
    """The users whose health an event may have changed (never the zero address)."""
    out = []
    for name in USER_ARGS.get(event, ()):
        user = args.get(name)
        if isinstance(user, str) and user != ZERO_ADDRESS and user not in out:
            out.append(user)
    return out


def reserves_in_use(bitmap: int, reserve_count: int) -> list[tuple[int, bool, bool]]:
    """Decode `getUserConfiguration`: (reserve id, borrowing, collateral) for every reserve in use.
    Bit 2*id is borrowing, bit 2*id+1 is using as collateral."""
    out = []
    for rid in range(reserve_count):
        bits = (bitmap >> (2 * rid)) & 3
        if bits:
            out.append((rid, bool(bits & 1), bool(bits & 2)))
    return out
