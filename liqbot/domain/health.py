"""Health: who can be liquidated and who is worth watching."""

from __future__ import annotations

from dataclasses import dataclass

from liqbot.domain.units import UINT256_MAX, WAD


@dataclass(frozen=True, slots=True)
class AccountData:
    """`Pool.getUserAccountData`, as integers: base-currency units, bps, and HF in wad."""

    user: str
    collateral_base: int
    debt_base: int
    available_borrows_base: int
    liquidation_threshold: int
    ltv: int
    health_factor: int

    @property
    def has_debt(self) -> bool:
        return self.debt_base > 0

    @property
    def liquidatable(self) -> bool:
        return is_liquidatable(self.health_factor, self.debt_base)


def is_liquidatable(health_factor: int, debt_base: int) -> bool:
    return debt_base > 0 and health_factor < WAD


def is_at_risk(health_factor: int, debt_base: int, threshold_wad: int) -> bool:
    return debt_base > 0 and health_factor < threshold_wad


# Stored health factors are capped so they fit a signed 64-bit column; anything above reads as "safe".
HF_STORE_CAP = 2**63 - 1


def storable_hf(health_factor: int) -> int:
    return min(health_factor, HF_STORE_CAP) if health_factor != UINT256_MAX else HF_STORE_CAP
