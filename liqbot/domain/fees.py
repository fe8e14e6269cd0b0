"""EIP-1559 fees: base fee headroom plus a tip that bids a share of the profit, within the cap."""

from __future__ import annotations

from dataclasses import dataclass

from liqbot.domain.units import BPS, WAD


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee: int  # wei per gas
    tip: int  # wei per gas


def bid(
    *, base_fee: int, gas: int, profit_base: int, native_price: int, min_tip: int, profit_share_bps: int, max_fee_cap: int,
) -> Fees:
    """A tip of `profit_share_bps` of the expected profit per gas (rivals bid for the same liquidation),
    never below `min_tip`; max fee 2 x base fee + tip; nothing above `max_fee_cap`."""
    tip = min(tip_ceiling(gas=gas, profit_base=profit_base, native_price=native_price, min_tip=min_tip,
                          profit_share_bps=profit_share_bps), max_fee_cap)
    return Fees(min(2 * base_fee + tip, max_fee_cap), tip)


def effective_tip(fees: Fees, base_fee: int) -> int:
    """What a transaction pays its block's builder per gas: the tip, or less when the max fee binds."""
    return max(0, min(fees.tip, fees.max_fee - base_fee))


def outbid(ours: Fees, rival: Fees, *, base_fee: int, ceiling_tip: int, max_fee_cap: int) -> Fees | None:
    """Fees that order our transaction ahead of a rival's pending one for the same user: a higher max
    fee (pools that rank by max fee, as anvil does) and a higher effective tip (builders rank by it),
    a step (1/10) above the rival's where the limits leave room, at least one wei above. None when even
    that would pay more than `ceiling_tip` (the profit share we bid at most) or the max-fee cap: the
    race is not worth winning at that price."""
    tip_room = min(ceiling_tip, max_fee_cap - base_fee)
    tip = min(max(ours.tip, _step(effective_tip(rival, base_fee))), tip_room)
    max_fee = min(max(ours.max_fee, _step(rival.max_fee), base_fee + tip), max_fee_cap)
    if tip <= effective_tip(rival, base_fee) or max_fee <= rival.max_fee:
        return None
    return Fees(max_fee, tip)


def _step(fee: int) -> int:
    return fee + fee // 10 + 1


def tip_ceiling(*, gas: int, profit_base: int, native_price: int, min_tip: int, profit_share_bps: int) -> int:
    """The highest tip we pay for a liquidation: `profit_share_bps` of its profit, never below `min_tip`."""
    if profit_base <= 0 or native_price <= 0 or gas <= 0 or profit_share_bps <= 0:
        return min_tip
    return max(min_tip, profit_base * profit_share_bps * WAD // (BPS * native_price * gas))
