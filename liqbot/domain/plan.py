"""A liquidation plan made where the user was detected (the producer's mirror), carried to the worker so
that it verifies the plan by simulating the exact call instead of reading the user again (pure).

On the wire it is a flat JSON object of integers and addresses; anything malformed is refused (None),
and the worker then reads the user fresh as it would without a plan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import is_address, to_checksum_address

from liqbot.domain.close_factor import Rules
from liqbot.domain.health import AccountData
from liqbot.domain.liquidation import Candidate, ReservePosition, Seizure, decide
from liqbot.domain.route import UNLIMITED
from liqbot.domain.units import UINT256_MAX

_INTS = ("debt_to_cover", "debt_arg", "collateral_seized", "protocol_fee", "debt_repaid", "gross_profit_base",
         "collateral_price", "debt_price", "native_price", "block")


@dataclass(frozen=True, slots=True)
class Plan:
    candidate: Candidate
    debt_arg: int  # what liquidationCall is passed: the amount, or type(uint256).max for all the Pool allows
    collateral_price: int
    debt_price: int
    native_price: int  # base units per whole gas token, for the gas cost
    block: int  # the block the plan was made at

    def to_message(self) -> dict[str, Any]:
        c, s = self.candidate, self.candidate.seizure
        return {"collateral_asset": c.collateral_asset, "debt_asset": c.debt_asset, "debt_to_cover": c.debt_to_cover,
                "debt_arg": self.debt_arg, "collateral_seized": s.collateral, "protocol_fee": s.protocol_fee,
                "debt_repaid": s.debt_repaid, "gross_profit_base": c.gross_profit_base,
                "collateral_price": self.collateral_price, "debt_price": self.debt_price,
                "native_price": self.native_price, "block": self.block}

    @classmethod
    def from_message(cls, raw: object) -> Plan | None:
        if not isinstance(raw, dict):
            return None
        ints = {k: raw.get(k) for k in _INTS}
        coll, debt = raw.get("collateral_asset"), raw.get("debt_asset")
        if (not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**256 for v in ints.values())
                or not (isinstance(coll, str) and is_address(coll) and isinstance(debt, str) and is_address(debt))
                or ints["debt_arg"] == 0 or ints["collateral_price"] == 0 or ints["debt_price"] == 0):
            return None
        seizure = Seizure(ints["collateral_seized"], ints["protocol_fee"], ints["debt_repaid"])
        candidate = Candidate(to_checksum_address(coll), to_checksum_address(debt), ints["debt_to_cover"], seizure,
                              ints["gross_profit_base"])
        return cls(candidate, ints["debt_arg"], ints["collateral_price"], ints["debt_price"], ints["native_price"],
                   ints["block"])


def make_plan(positions: Sequence[ReservePosition], account: AccountData, *, rules: Rules, native_price: int,
              gas_cost_base: int, min_profit_base: int, block: int) -> Plan | None:
    """The detector's plan from exact positions: the most profitable pair, sized as if our inventory were
    unlimited and passed as type(uint256).max, so the Pool takes exactly what it allows when the call
    lands (interest accrued by then included; never v3.3 dust). None when nothing is worth sending: the
    worker then reads the user and records why."""
    decision = decide(positions, health_factor=account.health_factor, total_debt_base=account.debt_base, rules=rules,
                      inventory=UNLIMITED, gas_cost_base=gas_cost_base, min_profit_base=min_profit_base)
    if decision.plan is None:
        return None
    prices = {p.asset: p.price for p in positions}
    c = decision.plan
    return Plan(c, UINT256_MAX, prices[c.collateral_asset], prices[c.debt_asset], native_price, block)
