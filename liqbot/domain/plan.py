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
class PendingUpdate:
    """A transaction not mined yet that changes a price the market reads (an oracle update we back-run):
    a plan made at its prices is valid only right behind it, so the worker simulates the two together
    and sends with the same max fee (a node ordering by fee then arrival mines ours right after it)."""

    tx_hash: str
    sender: str
    to: str
    data: str
    gas: int
    value: int
    max_fee: int
    tip: int
    nonce: int
    raw: str = ""  # its signed bytes (for a bundle: [this, ours]); empty when not rebuilt

    def call(self) -> dict[str, str]:
        """The transaction as a call, for eth_simulateV1 (no nonce or fees: several pending updates of one
        sender must simulate each on its own)."""
        return {"from": self.sender, "to": self.to, "input": self.data, "gas": hex(self.gas), "value": hex(self.value)}

    def to_message(self) -> dict[str, Any]:
        return {"tx_hash": self.tx_hash, "sender": self.sender, "to": self.to, "data": self.data, "gas": self.gas,
                "value": self.value, "max_fee": self.max_fee, "tip": self.tip, "nonce": self.nonce, "raw": self.raw}

    @classmethod
    def from_message(cls, raw: object) -> PendingUpdate | None:
        if not isinstance(raw, dict):
            return None
        try:
            ints = {k: raw[k] for k in ("gas", "value", "max_fee", "tip", "nonce")}
            text = {k: raw[k] for k in ("tx_hash", "sender", "to", "data")}
        except KeyError:
            return None
        if (not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**256 for v in ints.values())
                or not all(isinstance(v, str) and v.startswith("0x") for v in text.values())
                or not (is_address(text["sender"]) and is_address(text["to"]))):
            return None
        raw_tx = raw.get("raw") or ""
        if not isinstance(raw_tx, str):
            return None
        return cls(text["tx_hash"], to_checksum_address(text["sender"]), to_checksum_address(text["to"]), text["data"],
                   **ints, raw=raw_tx)

    @classmethod
    def from_tx(cls, tx: Any, raw: str = "") -> PendingUpdate | None:
        """From a node's transaction object (a `newPendingTransactions` full object), with its signed bytes when
        rebuilt; None if it is not one."""
        try:
            legacy = tx.get("maxFeePerGas") is None
            max_fee = int(tx["gasPrice"] if legacy else tx["maxFeePerGas"], 16)
            tip = max_fee if legacy else int(tx["maxPriorityFeePerGas"], 16)
            return cls.from_message({"tx_hash": tx["hash"], "sender": tx["from"], "to": tx["to"], "data": tx["input"],
                                     "gas": int(tx["gas"], 16), "value": int(tx.get("value") or "0x0", 16),
                                     "max_fee": max_fee, "tip": tip, "nonce": int(tx["nonce"], 16), "raw": raw})
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


@dataclass(frozen=True, slots=True)
class Plan:
    candidate: Candidate
    debt_arg: int  # what liquidationCall is passed: the amount, or type(uint256).max for all the Pool allows
    collateral_price: int
    debt_price: int
    native_price: int  # base units per whole gas token, for the gas cost
    block: int  # the block the plan was made at
    after: PendingUpdate | None = None  # the pending price update this plan backs (its prices are the update's)
    base_fee: int = 0  # of the head the detector last saw (0: unknown); what a send without simulation bids on

    def to_message(self) -> dict[str, Any]:
        c, s = self.candidate, self.candidate.seizure
        out = {"collateral_asset": c.collateral_asset, "debt_asset": c.debt_asset, "debt_to_cover": c.debt_to_cover,
               "debt_arg": self.debt_arg, "collateral_seized": s.collateral, "protocol_fee": s.protocol_fee,
               "debt_repaid": s.debt_repaid, "gross_profit_base": c.gross_profit_base,
               "collateral_price": self.collateral_price, "debt_price": self.debt_price,
               "native_price": self.native_price, "block": self.block, "base_fee": self.base_fee}
        if self.after is not None:
            out["after"] = self.after.to_message()
        return out

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
        after = PendingUpdate.from_message(raw["after"]) if "after" in raw else None
        base_fee = raw.get("base_fee", 0)
        if ("after" in raw and after is None) or not (isinstance(base_fee, int) and not isinstance(base_fee, bool)
                                                     and 0 <= base_fee < 2**256):
            return None
        return cls(candidate, ints["debt_arg"], ints["collateral_price"], ints["debt_price"], ints["native_price"],
                   ints["block"], after, base_fee)


def make_plan(positions: Sequence[ReservePosition], account: AccountData, *, rules: Rules, native_price: int,
              gas_cost_base: int, min_profit_base: int, block: int, after: PendingUpdate | None = None,
              base_fee: int = 0) -> Plan | None:
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
    return Plan(c, UINT256_MAX, prices[c.collateral_asset], prices[c.debt_asset], native_price, block, after, base_fee)
