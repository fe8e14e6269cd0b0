"""Why a liquidation reverted, from its revert data, and whether the cause was another liquidator (pure).

Aave up to v3.3 reverts with `Error(string)` holding a numeric code; from v3.4 on with custom errors.
Both are reduced to one code here, so the callers compare names, not versions."""

from __future__ import annotations

from eth_abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils import keccak

ERROR_STRING = "08c379a0"
CUSTOM_ERRORS = ("HealthFactorNotBelowThreshold", "CollateralCannotBeLiquidated", "SpecifiedCurrencyNotBorrowedByUser",
                 "MustNotLeaveDust", "ReserveInactive", "ReservePaused", "InvalidAmount")
_SELECTORS = {keccak(text=f"{name}()")[:4].hex(): name for name in CUSTOM_ERRORS}
# Numeric codes of v3.0-v3.3 and their v3.4+ names.
NAMES = {"45": "HealthFactorNotBelowThreshold", "46": "CollateralCannotBeLiquidated",
         "47": "SpecifiedCurrencyNotBorrowedByUser", "103": "MustNotLeaveDust", "26": "InvalidAmount",
         "27": "ReserveInactive", "29": "ReservePaused"}
# What a liquidation reverts with when someone else got there first: the user is healthy again, the
# chosen collateral or debt is gone. Our own faults (gas, approvals, bad sizing) are not among them.
LOST_RACE = frozenset({"HealthFactorNotBelowThreshold", "CollateralCannotBeLiquidated",
                       "SpecifiedCurrencyNotBorrowedByUser"})


def revert_code(data: object) -> str | None:
    """The error's name (v3.4+ spelling) from revert data `0x...`; None when it is not one we know."""
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return None
    selector, body = data[2:10].lower(), data[10:]
    if selector == ERROR_STRING:
        try:
            text = decode(["string"], bytes.fromhex(body))[0]
        except (DecodingError, ValueError):
            return None
        return NAMES.get(text, text)
    return _SELECTORS.get(selector)


def lost_race(code: str | None) -> bool:
    return code in LOST_RACE
