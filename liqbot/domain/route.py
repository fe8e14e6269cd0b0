"""How a liquidation is paid for: from the liquidator's inventory, or capital-free by flash loan through our
contract (borrow the debt asset, liquidate, sell the seized collateral on a DEX, repay, keep the rest).

Pure: the flash option's profit is what simulating the contract call returned (the quote, the premium and
the swap's price impact are all inside it); the inventory option's is the pure core's seizure value. The
more profitable option after its own gas wins."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from liqbot.domain.liquidation import gas_cost_base
from liqbot.domain.units import UINT256_MAX

INVENTORY, FLASH = "inventory", "flash"


class Unlimited(Mapping[str, int]):
    """A flash loan's "inventory": any amount of any asset the Pool lends."""

    def __getitem__(self, asset: str) -> int:
        return UINT256_MAX

    def get(self, asset: str, default: int | None = None) -> int:  # type: ignore[override]
        return UINT256_MAX

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


UNLIMITED = Unlimited()


@dataclass(frozen=True)
class RouteOption:
    route: str
    gross_profit_base: int  # before gas: the seizure's value (inventory) or the contract's profit (flash)
    gas: int

    def net(self, gas_price_wei: int, native_price: int) -> int:
        return self.gross_profit_base - gas_cost_base(self.gas, gas_price_wei, native_price)


def choose(options: Sequence[RouteOption], gas_price_wei: int, native_price: int) -> RouteOption | None:
    """The option with the most profit after gas; on a tie inventory (no swap to go wrong). None: no option."""
    if not options:
        return None
    return max(options, key=lambda o: (o.net(gas_price_wei, native_price), o.route == INVENTORY))


def flash_amount(debt_to_cover: int, margin: int) -> int:
    """What to borrow: the plan's cover plus a margin for interest accrued before mining. The Pool takes at
    most what the close factor allows; the rest is repaid from the loan itself."""
    return debt_to_cover + margin


def min_profit(quoted: int, slippage_bps: int, cost_base: int, price: int, decimals: int) -> int:
    """The least profit (debt asset units) a sent flash call accepts: the quote less `slippage_bps` of it,
    never below break-even (`cost_base`: gas and the operator's minimum, in base units, rounded up into the
    debt asset). The contract reverts below it: a DEX moved since the quote (arbitrage after the very update
    that made the user liquidatable) lands a smaller profit rather than a revert, a loss never."""
    break_even = -(-cost_base * 10**decimals // price)
    return max(quoted * (10_000 - slippage_bps) // 10_000, break_even)
