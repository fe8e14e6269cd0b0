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
    share_tip = 0
    if profit_base > 0 and native_price > 0 and gas > 0 and profit_share_bps > 0:
        share_tip = profit_base * profit_share_bps * WAD // (BPS * native_price * gas)
    tip = min(max(min_tip, share_tip), max_fee_cap)
    return Fees(min(2 * base_fee + tip, max_fee_cap), tip)
